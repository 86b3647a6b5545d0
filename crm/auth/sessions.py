"""Staff sessions held on the server. Each sign-in is a row that the cookie's secret
points at, so logging out, or idling past the tenant's limit, ends the session for every
copy of the cookie. A user's session generation (``User.session_token``) still ends all
of their sessions at once, on a password change or a deactivation."""

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from crm.audit.chain import digest, format_instant
from crm.audit.service import Actor, record
from crm.auth.models import StaffSession, User
from crm.columns import utcnow
from crm.extensions import db
from crm.provisioning.service import tenant_settings

# last_seen_at is written at most this often, not on every request; the idle limit is
# kept to within this much.
TOUCH_EVERY = timedelta(minutes=1)


class EndReason:
    LOGOUT = "logout"
    IDLE = "idle"
    # The account's access window ended (or is not open) while the session was live.
    ACCESS_WINDOW = "access_window"
    # The user ended it from another session's list, or signed out everywhere else.
    ENDED_BY_USER = "ended_by_user"
    # The password changed (or was reset), or the account was deactivated.
    PASSWORD = "password"
    DEACTIVATED = "deactivated"


def start_session(
    user: User, now: datetime, *, ip: str | None = None, user_agent: str | None = None
) -> StaffSession:
    """Open a session for ``user``; its secret goes into the cookie via ``get_id``."""
    secret = secrets.token_urlsafe(32)
    staff_session = StaffSession(
        user_id=user.id,
        secret_digest=digest(secret),
        started_at=now,
        last_seen_at=now,
        ip=ip,
        user_agent=(user_agent or "")[:300] or None,
    )
    db.session.add(staff_session)
    db.session.flush()
    user.session_secret = secret
    return staff_session


def _live_session(user: User) -> StaffSession | None:
    if not user.session_secret:
        return None
    return db.session.scalars(
        select(StaffSession).where(
            StaffSession.secret_digest == digest(user.session_secret),
            StaffSession.user_id == user.id,
            StaffSession.ended_at.is_(None),
        )
    ).one_or_none()


@dataclass(frozen=True)
class Resumed:
    """What a request's session cookie leads to: the user, or nobody; ``idle_minutes``
    is set when this very request found the session idle too long and ended it;
    ``outside_window`` is the user, when it ended it because the account's access window
    is not open. ``changed`` says there is something to commit."""

    user: User | None
    idle_minutes: int | None = None
    outside_window: User | None = None
    changed: bool = False


def resume_session(session_id: str) -> Resumed:
    """The user behind a session cookie's id, if that session is still live; a session
    idle longer than the tenant allows, or whose user's access window has closed, is
    ended here, and audited."""
    parts = (session_id or "").split(":")
    if len(parts) != 3 or not parts[0].isdigit() or len(parts[0]) > 18 or not all(parts):
        return Resumed(None)
    user_id, generation, secret = parts
    user = db.session.scalars(select(User).where(User.id == int(user_id))).one_or_none()
    if user is None or user.session_token != generation or not user.active:
        return Resumed(None)
    user.session_secret = secret
    staff_session = _live_session(user)
    if staff_session is None:
        return Resumed(None)
    now = utcnow()
    if user.access_state(now) != "open":
        staff_session.ended_at, staff_session.end_reason = now, EndReason.ACCESS_WINDOW
        record(
            "auth.access_ended",
            "user",
            user.id,
            actor=Actor.system(),
            data={
                "session_id": staff_session.id,
                "access_starts_at": format_instant(user.access_starts_at) if user.access_starts_at else None,
                "access_expires_at": format_instant(user.access_expires_at)
                if user.access_expires_at
                else None,
            },
        )
        return Resumed(None, outside_window=user, changed=True)
    idle_minutes = tenant_settings().idle_timeout_minutes
    if now - staff_session.last_seen_at > timedelta(minutes=idle_minutes):
        staff_session.ended_at, staff_session.end_reason = now, EndReason.IDLE
        record(
            "auth.session_expired",
            "user",
            user.id,
            actor=Actor.system(),
            data={"idle_minutes": idle_minutes, "session_id": staff_session.id},
        )
        return Resumed(None, idle_minutes=idle_minutes, changed=True)
    if now - staff_session.last_seen_at < TOUCH_EVERY:
        return Resumed(user)
    staff_session.last_seen_at = now
    return Resumed(user, changed=True)


def end_session(user: User, *, ip: str | None) -> None:
    """Log out: this session ends for good, whoever holds a copy of its cookie; the
    user's other sessions (other browsers) go on."""
    staff_session = _live_session(user)
    if staff_session is not None:
        staff_session.ended_at, staff_session.end_reason = utcnow(), EndReason.LOGOUT
    record(
        "auth.logout",
        "user",
        user.id,
        actor=Actor("user", str(user.id), user.email, ip),
        data={"session_id": staff_session.id if staff_session else None},
    )


def current_session_id(user: User) -> int | None:
    """The id of the session this request is signed in with."""
    staff_session = _live_session(user)
    return staff_session.id if staff_session else None


def live_sessions(user: User) -> list[StaffSession]:
    """The user's sessions that are still usable, most recently active first (one idle
    past the tenant's limit ends when next used, so it is not listed)."""
    idle_since = utcnow() - timedelta(minutes=tenant_settings().idle_timeout_minutes)
    return list(
        db.session.scalars(
            select(StaffSession)
            .where(
                StaffSession.user_id == user.id,
                StaffSession.ended_at.is_(None),
                StaffSession.last_seen_at >= idle_since,
            )
            .order_by(StaffSession.last_seen_at.desc(), StaffSession.id.desc())
        )
    )


def end_sessions(user: User, reason: str, *, keep: int | None = None) -> list[int]:
    """End the user's live sessions but ``keep``; their ids. Their cookies stop working
    at once (``resume_session`` finds no live row)."""
    now = utcnow()
    ended = []
    for staff_session in db.session.scalars(
        select(StaffSession).where(StaffSession.user_id == user.id, StaffSession.ended_at.is_(None))
    ):
        if staff_session.id != keep:
            staff_session.ended_at, staff_session.end_reason = now, reason
            ended.append(staff_session.id)
    return ended


def end_own_sessions(user: User, session_ids: list[int] | None, *, actor: Actor) -> list[int]:
    """The user ends some of their other sessions (``None``: all of them), audited. The
    session they act from is never among them: signing out is for that."""
    current = current_session_id(user)
    wanted = set(session_ids) if session_ids is not None else None
    now = utcnow()
    ended = []
    for staff_session in db.session.scalars(
        select(StaffSession).where(StaffSession.user_id == user.id, StaffSession.ended_at.is_(None))
    ):
        if staff_session.id == current or (wanted is not None and staff_session.id not in wanted):
            continue
        staff_session.ended_at, staff_session.end_reason = now, EndReason.ENDED_BY_USER
        ended.append(staff_session.id)
    if ended:
        record("auth.sessions_ended", "user", user.id, actor=actor, data={"session_ids": ended})
    return ended


def browser_of(user_agent: str | None) -> tuple[str | None, str | None]:
    """(browser, system) named from a User-Agent header, well enough to tell one's own
    sessions apart; None where it does not say."""
    agent = user_agent or ""
    browsers = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"))
    browser = next((name for token, name in browsers if token in agent), None)
    if browser is None and "Safari/" in agent:
        browser = "Safari"
    systems = (
        ("Windows", "Windows"),
        ("iPhone", "iOS"),
        ("iPad", "iPadOS"),
        ("Android", "Android"),
        ("Mac OS X", "macOS"),
        ("CrOS", "ChromeOS"),
        ("Linux", "Linux"),
    )
    system = next((name for token, name in systems if token in agent), None)
    return browser, system
