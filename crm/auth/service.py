"""Staff account operations. Each changes rows and queues its audit event; the caller
commits once."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from werkzeug.security import check_password_hash, generate_password_hash

from crm.access import Role
from crm.audit.chain import digest, format_instant
from crm.audit.service import Actor, record
from crm.auth.models import LoginThrottle, User, new_session_token
from crm.auth.passwords import PASSWORD_MAX, PASSWORD_MIN
from crm.columns import utcnow
from crm.errors import Conflict, DomainError
from crm.extensions import db, insert_or_ignore
from crm.i18n import SUPPORTED_LOCALES


@cache
def _decoy_hash(method: str) -> str:
    """Checked against when the email is unknown, so a miss costs as much as a wrong
    password."""
    return generate_password_hash("not-a-real-password", method=method)


def normalise_email(email: str) -> str:
    return (email or "").strip().lower()


def check_email(email: str) -> str:
    """The normalised address, or a DomainError saying what is wrong with it."""
    email = normalise_email(email)
    if not email:
        raise DomainError(_l("Enter an email address."), "email")
    try:
        # test_environment admits *.test addresses, which the demo tenant uses.
        checked = validate_email(email, check_deliverability=False, test_environment=True)
    except EmailNotValidError:
        raise DomainError(_l("Enter a valid email address."), "email") from None
    return checked.normalized.lower()


def check_password(password: str, field: str = "password") -> str:
    if len(password or "") < PASSWORD_MIN:
        raise DomainError(_l("Use at least %(n)d characters.", n=PASSWORD_MIN), field)
    if len(password) > PASSWORD_MAX:
        raise DomainError(_l("Use at most %(n)d characters.", n=PASSWORD_MAX), field)
    return password


def check_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        choices = ", ".join(r.value for r in Role)
        raise DomainError(
            _l("Unknown role %(role)s; choose one of %(choices)s.", role=role, choices=choices), "role"
        ) from None


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=current_app.config["PASSWORD_HASH_METHOD"])


def user_by_id(user_id: int) -> User | None:
    return db.session.scalars(select(User).where(User.id == user_id)).one_or_none()


def user_by_email(email: str) -> User | None:
    return db.session.scalars(select(User).where(User.email == normalise_email(email))).one_or_none()


def list_users() -> list[User]:
    return list(db.session.scalars(select(User).order_by(User.active.desc(), User.email)))


def create_user(
    *,
    email: str,
    role: str,
    password: str,
    actor: Actor,
    display_name: str = "",
    created_by: User | None = None,
    access_expires_at: datetime | None = None,
) -> User:
    """Add a staff user to the tenant in context."""
    email = check_email(email)
    role = check_role(role)
    check_password(password)
    display_name = (display_name or "").strip() or email.split("@")[0]
    if len(display_name) > 200:
        raise DomainError(_l("Use at most %(n)d characters.", n=200), "display_name")
    if user_by_email(email) is not None:
        raise Conflict(_l("A user with this email already exists."), "email")
    user = User(
        email=email,
        display_name=display_name,
        role=role,
        password_hash=hash_password(password),
        created_by_id=created_by.id if created_by else None,
        access_expires_at=access_expires_at,
    )
    db.session.add(user)
    db.session.flush()
    record(
        "user.created",
        "user",
        user.id,
        actor=actor,
        data={
            "email_sha256": digest(email),
            "role": role,
            "access_expires_at": format_instant(access_expires_at) if access_expires_at else None,
        },
    )
    return user


def update_user(
    user: User, *, role: str, active: bool, actor: Actor, acting_user: User | None = None
) -> None:
    """Change a user's role or deactivate/reactivate them. Deactivation ends their sessions."""
    role = check_role(role)
    if acting_user is not None and user.id == acting_user.id and (role != user.role or not active):
        raise DomainError(_l("You cannot change your own role or deactivate yourself."), "role")
    changes = {}
    if role != user.role:
        changes["role"] = {"before": user.role, "after": role}
        user.role = role
    if active != user.active:
        changes["active"] = {"before": user.active, "after": active}
        user.active = active
        user.session_token = new_session_token()
    if not changes:
        return
    _ensure_an_admin_remains()
    action = "user.deactivated" if changes.get("active", {}).get("after") is False else "user.changed"
    record(action, "user", user.id, actor=actor, data=changes)


def _ensure_an_admin_remains() -> None:
    db.session.flush()
    admins = db.session.scalar(
        select(func.count()).select_from(User).where(User.role == Role.ADMIN, User.active.is_(True))
    )
    if not admins:
        raise DomainError(_l("Your organisation must keep at least one active admin."), "role")


def change_password(user: User, *, current: str, new: str, actor: Actor) -> None:
    """Set a new password; every other session of the user ends."""
    if not check_password_hash(user.password_hash, current or ""):
        raise DomainError(_l("The current password is not correct."), "current_password")
    check_password(new, "new_password")
    user.password_hash = hash_password(new)
    user.session_token = new_session_token()
    record("user.password_changed", "user", user.id, actor=actor)


def set_locale(user: User, locale: str | None, *, actor: Actor) -> None:
    """Set the user's language; None follows the tenant's default."""
    if locale is not None and locale not in SUPPORTED_LOCALES:
        raise DomainError(_l("Unknown language."), "locale")
    if locale == user.locale:
        return
    record("user.locale_changed", "user", user.id, actor=actor, data={"before": user.locale, "after": locale})
    user.locale = locale


@dataclass(frozen=True)
class LoginRefused(Exception):
    """Sign-in failed. ``locked`` says the email is paused; neither says if it exists."""

    locked: bool


def _throttle(email: str) -> LoginThrottle:
    """The email's throttle row, created if missing and locked for this transaction, so
    parallel guesses at one email are counted one after another, none lost."""
    key = digest(email)
    insert_or_ignore(LoginThrottle, {"email_digest": key, "failures": 0, "window_started_at": utcnow()})
    return db.session.scalars(
        select(LoginThrottle).where(LoginThrottle.email_digest == key).with_for_update()
    ).one()


def authenticate(email: str, password: str, *, ip: str | None) -> User:
    """Return the user for these credentials or raise ``LoginRefused``.

    Five failures for one email within 15 minutes pause sign-in for that email for 15
    minutes, whether or not an account has it. Each failure and each lock is audited;
    the caller commits either way."""
    config = current_app.config
    email = normalise_email(email)
    now = utcnow()
    throttle = _throttle(email)
    user = user_by_email(email) if email else None
    subject = ("user", user.id) if user else ("login", None)
    anonymous = Actor("anonymous", None, "anonymous", ip)
    if throttle.locked_until is not None and throttle.locked_until > now:
        record(
            "auth.login_refused",
            *subject,
            actor=anonymous,
            data={"email_sha256": digest(email), "reason": "locked"},
        )
        raise LoginRefused(locked=True)
    stored_hash = user.password_hash if user else _decoy_hash(config["PASSWORD_HASH_METHOD"])
    password_ok = check_password_hash(stored_hash, password or "")
    if user is not None and password_ok and user.is_active:
        throttle.failures, throttle.locked_until = 0, None
        record("auth.login", "user", user.id, actor=Actor("user", str(user.id), user.email, ip))
        return user
    if now - throttle.window_started_at > timedelta(minutes=config["LOGIN_WINDOW_MINUTES"]):
        throttle.failures, throttle.window_started_at = 0, now
    throttle.failures += 1
    reason = "inactive" if (user is not None and password_ok) else "bad_credentials"
    record(
        "auth.login_failed",
        *subject,
        actor=anonymous,
        data={"email_sha256": digest(email), "reason": reason, "failures": throttle.failures},
    )
    if throttle.failures >= config["LOGIN_MAX_FAILURES"]:
        throttle.locked_until = now + timedelta(minutes=config["LOGIN_LOCK_MINUTES"])
        throttle.failures, throttle.window_started_at = 0, now
        record(
            "auth.locked",
            *subject,
            actor=Actor.system(),
            data={"email_sha256": digest(email), "locked_until": format_instant(throttle.locked_until)},
        )
        raise LoginRefused(locked=True)
    raise LoginRefused(locked=False)


def record_logout(user: User, *, ip: str | None) -> None:
    record("auth.logout", "user", user.id, actor=Actor("user", str(user.id), user.email, ip))


def load_session_user(session_id: str) -> User | None:
    """The user behind a session cookie's id, if that session is still valid."""
    user_id, _, token = (session_id or "").partition(":")
    if not user_id.isdigit() or not token:
        return None
    user = user_by_id(int(user_id))
    if user is None or user.session_token != token or not user.is_active:
        return None
    return user
