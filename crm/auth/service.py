"""Staff account operations. Each changes rows and queues its audit event; the caller
commits once."""

from dataclasses import dataclass
from datetime import datetime
from functools import cache

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from werkzeug.security import check_password_hash, generate_password_hash

from crm.access import Role
from crm.audit.chain import digest, format_instant
from crm.audit.service import Actor, record
from crm.auth import throttle
from crm.auth.models import User, new_session_token
from crm.auth.passwords import PASSWORD_MAX, PASSWORD_MIN, weakness
from crm.auth.sessions import start_session
from crm.columns import utcnow
from crm.errors import Conflict, DomainError
from crm.extensions import db
from crm.i18n import SUPPORTED_LOCALES
from tenants import current_tenant


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


def check_password(password: str, *, email: str, display_name: str = "", field: str = "password") -> str:
    """The password, if long enough and not easy to guess for the person with this
    email and name in the tenant in context; else a DomainError saying why."""
    if len(password or "") < PASSWORD_MIN:
        raise DomainError(_l("Use at least %(n)d characters.", n=PASSWORD_MIN), field)
    if len(password) > PASSWORD_MAX:
        raise DomainError(_l("Use at most %(n)d characters.", n=PASSWORD_MAX), field)
    tenant = current_tenant()
    personal = [email, email.partition("@")[0], display_name]
    if tenant is not None:
        personal += [tenant.name, tenant.slug]
    reason = weakness(password, personal)
    if reason:
        raise DomainError(reason, field)
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
    display_name = (display_name or "").strip() or email.split("@")[0]
    if len(display_name) > 200:
        raise DomainError(_l("Use at most %(n)d characters.", n=200), "display_name")
    check_password(password, email=email, display_name=display_name)
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
    check_password(new, email=user.email, display_name=user.display_name, field="new_password")
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
    """Sign-in failed. ``locked`` says sign-in is paused, for ``retry_after`` seconds,
    for this email from this address (``scope`` "email") or for every email from this
    address ("source"); none of it says whether the email has an account."""

    locked: bool
    scope: str | None = None
    retry_after: int = 0


def authenticate(email: str, password: str, *, ip: str | None) -> User:
    """Return the user for these credentials, signed in to a new session, or raise
    ``LoginRefused``.

    Failures are counted per email and source address: five within 15 minutes pause
    that email from that address for 15 minutes, so a stranger elsewhere cannot lock
    the owner out. Twenty from one address, whatever the emails, pause every sign-in
    from it. Both behave the same whether or not an account has the email. Each
    failure, refusal and lock is audited; the caller commits either way."""
    config = current_app.config
    email = normalise_email(email)
    now = utcnow()
    counters = throttle.throttles_for(email, ip)
    user = user_by_email(email) if email else None
    subject = ("user", user.id) if user else ("login", None)
    anonymous = Actor("anonymous", None, "anonymous", ip)
    checks = (("source", counters.source, "source_locked"), ("email", counters.pair, "locked"))
    for scope, row, reason in checks:
        wait = throttle.seconds_locked(row, now)
        if wait:
            record(
                "auth.login_refused",
                *subject,
                actor=anonymous,
                data={"email_sha256": digest(email), "reason": reason},
            )
            raise LoginRefused(locked=True, scope=scope, retry_after=wait)
    stored_hash = user.password_hash if user else _decoy_hash(config["PASSWORD_HASH_METHOD"])
    password_ok = check_password_hash(stored_hash, password or "")
    if user is not None and password_ok and user.is_active:
        throttle.clear(counters.pair)
        staff_session = start_session(user, now)
        record(
            "auth.login",
            "user",
            user.id,
            actor=Actor("user", str(user.id), user.email, ip),
            data={"session_id": staff_session.id},
        )
        return user
    reason = "inactive" if (user is not None and password_ok) else "bad_credentials"
    email_locked = throttle.count_failure(
        counters.pair,
        now,
        max_failures=config["LOGIN_MAX_FAILURES"],
        window_minutes=config["LOGIN_WINDOW_MINUTES"],
        lock_minutes=config["LOGIN_LOCK_MINUTES"],
    )
    failures = config["LOGIN_MAX_FAILURES"] if email_locked else counters.pair.failures
    source_locked = throttle.count_failure(
        counters.source,
        now,
        max_failures=config["LOGIN_SOURCE_MAX_FAILURES"],
        window_minutes=config["LOGIN_SOURCE_WINDOW_MINUTES"],
        lock_minutes=config["LOGIN_SOURCE_LOCK_MINUTES"],
    )
    record(
        "auth.login_failed",
        *subject,
        actor=anonymous,
        data={"email_sha256": digest(email), "reason": reason, "failures": failures},
    )
    if email_locked:
        record(
            "auth.locked",
            *subject,
            actor=Actor.system(),
            data={"email_sha256": digest(email), "locked_until": format_instant(counters.pair.locked_until)},
        )
    if source_locked:
        record(
            "auth.source_locked",
            "login",
            None,
            actor=Actor("system", None, "system", ip),
            data={
                "source_sha256": digest(throttle.source_of(ip)),
                "locked_until": format_instant(counters.source.locked_until),
            },
        )
    if source_locked or email_locked:
        scope, row = ("source", counters.source) if source_locked else ("email", counters.pair)
        raise LoginRefused(locked=True, scope=scope, retry_after=throttle.seconds_locked(row, now))
    raise LoginRefused(locked=False)
