"""Staff account operations. Each changes rows and queues its audit event; the caller
commits once."""

import re
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import NoReturn

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from werkzeug.security import check_password_hash, generate_password_hash

from crm.access import Role
from crm.audit.chain import digest, format_instant
from crm.audit.service import Actor, record
from crm.auth import throttle, two_factor
from crm.auth.models import User, new_session_token
from crm.auth.passwords import PASSWORD_MAX, PASSWORD_MIN, weakness
from crm.auth.scope import MAX_SCOPE_TICKETS, ScopeKind, TicketScope
from crm.auth.sessions import EndReason, current_session_id, end_sessions, start_session
from crm.columns import utcnow
from crm.errors import Conflict, DomainError
from crm.extensions import db
from crm.i18n import SUPPORTED_LOCALES
from crm.mail_addresses import check_email, normalise_email
from crm.tickets.models import Ticket
from crm.tickets.queue import ticket_number_in
from tenants import current_tenant


@cache
def _decoy_hash(method: str) -> str:
    """Checked against when the email is unknown, so a miss costs as much as a wrong
    password."""
    return generate_password_hash("not-a-real-password", method=method)


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


def ticket_references(ticket_ids) -> list[str]:
    """The references of these tickets of the tenant in context, in number order."""
    if not ticket_ids:
        return []
    query = select(Ticket.reference).where(Ticket.id.in_(list(ticket_ids))).order_by(Ticket.number)
    return list(db.session.scalars(query))


def list_users() -> list[User]:
    return list(db.session.scalars(select(User).order_by(User.active.desc(), User.email)))


def staff_names() -> dict[int, str]:
    """Every user's name as pages show it, by id."""
    return {user.id: user.display_name for user in list_users()}


@dataclass(frozen=True)
class Access:
    """When an account may be used and, for an auditor, which tickets it reads, as an
    admin asks for it: the window's instants (either may be open), and the scope's kind
    with its receipt range (``received_before`` exclusive) or its ticket numbers."""

    starts_at: datetime | None = None
    expires_at: datetime | None = None
    scope_kind: str = ScopeKind.ALL
    received_from: datetime | None = None
    received_before: datetime | None = None
    ticket_numbers: tuple[int, ...] = ()


NO_LIMITS = Access()


TICKET_LIST_SEPARATORS = re.compile(r"[,;，；、\r\n]+")


def parse_ticket_numbers(text: str) -> tuple[int, ...]:
    """The numbers in a list of references as people type them ("RF-1001, rf 1002;
    #1003 1004"), or a DomainError naming the first item that is not one."""
    numbers = []
    for chunk in TICKET_LIST_SEPARATORS.split(text or ""):
        number = ticket_number_in(chunk)
        items = [number] if number is not None else [ticket_number_in(word) for word in chunk.split()]
        for word, item in zip(chunk.split(), items, strict=False):
            if item is None:
                raise DomainError(_l("“%(item)s” is not a ticket number.", item=word[:40]), "scope_tickets")
        numbers.extend(item for item in items if item is not None)
    return tuple(numbers)


def check_window(access: Access, *, now: datetime | None = None) -> None:
    """Refuse a window that ends before it starts, or has already ended: such an account
    could never sign in."""
    now = now or utcnow()
    if access.starts_at and access.expires_at and access.expires_at <= access.starts_at:
        raise DomainError(_l("Access must end after it starts."), "access_expires_on")
    if access.expires_at and access.expires_at <= now:
        raise DomainError(
            _l("This access would already have ended: choose an end date from today on, or none."),
            "access_expires_on",
        )


def check_scope(role: Role, access: Access) -> TicketScope:
    """The scope ``access`` asks for, checked: only an auditor's can be limited; a range
    needs a bound and its bounds in order; a list names existing tickets of the tenant
    in context, at most ``MAX_SCOPE_TICKETS``."""
    try:
        kind = ScopeKind(access.scope_kind or ScopeKind.ALL)
    except ValueError:
        raise DomainError(_l("Choose which tickets the auditor may read."), "scope_kind") from None
    if kind == ScopeKind.ALL:
        return TicketScope()
    if role != Role.AUDITOR:
        raise DomainError(_l("Only an auditor's access can be limited to some tickets."), "scope_kind")
    if kind == ScopeKind.RECEIVED:
        start, end = access.received_from, access.received_before
        if start is None and end is None:
            raise DomainError(
                _l("Give the first or the last day of receipt, or both."), "scope_received_from"
            )
        if start is not None and end is not None and end <= start:
            raise DomainError(_l("The last day cannot be before the first."), "scope_received_until")
        return TicketScope(kind, start, end)
    numbers = sorted(set(access.ticket_numbers))
    if not numbers:
        raise DomainError(_l("List the numbers of the tickets the auditor may read."), "scope_tickets")
    if len(numbers) > MAX_SCOPE_TICKETS:
        raise DomainError(
            _l("List at most %(n)d tickets; for more, give a range of receipt dates.", n=MAX_SCOPE_TICKETS),
            "scope_tickets",
        )
    found = dict(db.session.execute(select(Ticket.number, Ticket.id).where(Ticket.number.in_(numbers))).all())
    unknown = [number for number in numbers if number not in found]
    if unknown:
        shown = ", ".join(str(number) for number in unknown[:10])
        raise DomainError(
            _l("No ticket has the number %(numbers)s.", numbers=shown + (" …" if len(unknown) > 10 else "")),
            "scope_tickets",
        )
    return TicketScope(kind, ticket_ids=tuple(sorted(found.values())))


def _access_data(user: User) -> dict:
    """The user's window and scope as audit events record them: instants and ids."""
    data = {
        "access_starts_at": format_instant(user.access_starts_at) if user.access_starts_at else None,
        "access_expires_at": format_instant(user.access_expires_at) if user.access_expires_at else None,
    }
    if user.role == Role.AUDITOR:
        data["scope"] = TicketScope.of(user).as_audit_data()
    return data


def _apply_access(user: User, access: Access, scope: TicketScope) -> None:
    user.access_starts_at, user.access_expires_at = access.starts_at, access.expires_at
    user.scope_kind = scope.kind.value
    user.scope_received_from, user.scope_received_before = scope.received_from, scope.received_before
    user.scope_ticket_ids = list(scope.ticket_ids) if scope.kind == ScopeKind.TICKETS else None


def create_user(
    *,
    email: str,
    role: str,
    password: str,
    actor: Actor,
    display_name: str = "",
    created_by: User | None = None,
    access: Access = NO_LIMITS,
) -> User:
    """Add a staff user to the tenant in context, usable within ``access``'s window and,
    for an auditor, reading the tickets of its scope."""
    email = check_email(email)
    role = check_role(role)
    display_name = (display_name or "").strip() or email.split("@")[0]
    if len(display_name) > 200:
        raise DomainError(_l("Use at most %(n)d characters.", n=200), "display_name")
    check_password(password, email=email, display_name=display_name)
    check_window(access)
    scope = check_scope(role, access)
    if user_by_email(email) is not None:
        raise Conflict(_l("A user with this email already exists."), "email")
    user = User(
        email=email,
        display_name=display_name,
        role=role,
        password_hash=hash_password(password),
        created_by_id=created_by.id if created_by else None,
    )
    _apply_access(user, access, scope)
    db.session.add(user)
    db.session.flush()
    record(
        "user.created",
        "user",
        user.id,
        actor=actor,
        data={"email_sha256": digest(email), "role": role, **_access_data(user)},
    )
    return user


def update_user(
    user: User,
    *,
    role: str,
    active: bool,
    actor: Actor,
    acting_user: User | None = None,
    access: Access | None = None,
    takes_leads: bool | None = None,
) -> None:
    """Change a user's role, window or auditor's scope (``access``; None keeps them), or
    deactivate/reactivate them. Deactivation ends their sessions; a window that has
    ended is refused unless the user is being deactivated."""
    role = check_role(role)
    if acting_user is not None and user.id == acting_user.id and (role != user.role or not active):
        raise DomainError(_l("You cannot change your own role or deactivate yourself."), "role")
    before = _access_data(user)
    if access is not None:
        if active:
            check_window(access)
        _apply_access(user, access, check_scope(role, access))
    changes = {}
    if role != user.role:
        changes["role"] = {"before": user.role, "after": role}
        user.role = role
    if role != Role.AUDITOR:
        _apply_access(user, access or Access(user.access_starts_at, user.access_expires_at), TicketScope())
    takes_leads = bool(takes_leads) and role != Role.AUDITOR if takes_leads is not None else user.takes_leads
    if takes_leads != user.takes_leads:
        changes["takes_leads"] = {"before": user.takes_leads, "after": takes_leads}
        user.takes_leads = takes_leads
    if active != user.active:
        changes["active"] = {"before": user.active, "after": active}
        user.active = active
        user.session_token = new_session_token()
        if not active:
            end_sessions(user, EndReason.DEACTIVATED)
    after = _access_data(user)
    for key in sorted(before.keys() | after.keys()):
        if before.get(key) != after.get(key):
            changes[key] = {"before": before.get(key), "after": after.get(key)}
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
    end_sessions(user, EndReason.PASSWORD, keep=current_session_id(user))
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
    address ("source"); none of it says whether the email has an account. ``outside_window``
    is the user whose password was right but whose access window is not open now (only
    the account's owner learns when it opens or ended)."""

    locked: bool
    scope: str | None = None
    retry_after: int = 0
    outside_window: User | None = None


def authenticate(email: str, password: str, *, ip: str | None, user_agent: str | None = None) -> User:
    """Return the user for these credentials, or raise ``LoginRefused``. A user without a
    second step is signed in to a new session here; one with it is not signed in until
    ``confirm_second_step`` accepts their code (``two_factor.enabled(user)`` tells which).

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
    _refuse_if_locked(counters, subject, anonymous, email, now)
    stored_hash = user.password_hash if user else _decoy_hash(config["PASSWORD_HASH_METHOD"])
    password_ok = check_password_hash(stored_hash, password or "")
    if user is not None and password_ok and user.active and user.access_state(now) != "open":
        record(
            "auth.login_refused",
            "user",
            user.id,
            actor=anonymous,
            data={"email_sha256": digest(email), "reason": f"access_{user.access_state(now)}"},
        )
        raise LoginRefused(locked=False, outside_window=user)
    if user is not None and password_ok and user.is_active:
        if user.totp_enabled_at is not None:
            # Not signed in yet, and the throttles not cleared: code guesses count on.
            record(
                "auth.password_accepted", "user", user.id, actor=Actor("user", str(user.id), user.email, ip)
            )
            return user
        sign_in(user, ip=ip, user_agent=user_agent)
        return user
    reason = "inactive" if (user is not None and password_ok) else "bad_credentials"
    _count_failure(counters, subject, anonymous, email, now, action="auth.login_failed", reason=reason)


def sign_in(user: User, *, ip: str | None, user_agent: str | None, second_step: str | None = None) -> None:
    """Open the session of a user whose credentials were accepted (``second_step``: how
    the second step was passed, if there was one); their failure count starts again."""
    throttle.clear(throttle.throttles_for(user.email, ip).pair)
    staff_session = start_session(user, utcnow(), ip=ip, user_agent=user_agent)
    record(
        "auth.login",
        "user",
        user.id,
        actor=Actor("user", str(user.id), user.email, ip),
        data={"session_id": staff_session.id, **({"second_step": second_step} if second_step else {})},
    )


def confirm_second_step(user: User, code: str | None, *, ip: str | None, user_agent: str | None) -> str:
    """Sign ``user`` in if ``code`` is their second step, and say which kind it was ("app"
    or "recovery"); otherwise count the failure against the same throttles as a wrong
    password and raise ``LoginRefused``."""
    now = utcnow()
    counters = throttle.throttles_for(user.email, ip)
    actor = Actor("user", str(user.id), user.email, ip)
    _refuse_if_locked(counters, ("user", user.id), actor, user.email, now)
    used = two_factor.check(user, code)
    if used is None:
        _count_failure(
            counters,
            ("user", user.id),
            actor,
            user.email,
            now,
            action="auth.second_step_failed",
            reason="bad_code",
        )
    sign_in(user, ip=ip, user_agent=user_agent, second_step=used)
    return used


def _refuse_if_locked(counters: throttle.Throttles, subject: tuple, actor: Actor, email: str, now) -> None:
    checks = (("source", counters.source, "source_locked"), ("email", counters.pair, "locked"))
    for scope, row, reason in checks:
        wait = throttle.seconds_locked(row, now)
        if wait:
            record(
                "auth.login_refused",
                *subject,
                actor=actor,
                data={"email_sha256": digest(email), "reason": reason},
            )
            raise LoginRefused(locked=True, scope=scope, retry_after=wait)


def _count_failure(
    counters: throttle.Throttles, subject: tuple, actor: Actor, email: str, now, *, action: str, reason: str
) -> NoReturn:
    config = current_app.config
    ip = actor.ip
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
        action,
        *subject,
        actor=actor,
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
