"""Staff users, their sessions, and the sign-in throttles."""

import secrets
from datetime import date, datetime

from flask_login import UserMixin
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from crm.columns import UTCDateTime, utcnow
from crm.extensions import db
from tenants import BigIntId, TenantScoped, tenant_fk


def new_session_token() -> str:
    return secrets.token_hex(16)


class User(TenantScoped, UserMixin, db.Model):
    """A staff member of one tenant. Email is unique within the tenant."""

    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        UniqueConstraint("tenant_id", "email"),
        tenant_fk(["created_by_id"], "users"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    locale: Mapped[str | None] = mapped_column(String(16))
    # Whether notifications (deadlines, customers' replies, approvals) also come by email.
    email_notifications: Mapped[bool] = mapped_column(Boolean, default=True)
    # Managers' weekly report by email, and the Monday of the last week it was sent for.
    weekly_digest: Mapped[bool] = mapped_column(Boolean, default=False)
    digest_week: Mapped[date | None] = mapped_column(Date)
    # New leads are shared round robin among the staff who take them.
    takes_leads: Mapped[bool] = mapped_column(Boolean, default=False)
    # Part of the session cookie's identity: rotating it ends every session of the user
    # (a password change, a deactivation); logging out or idling ends one StaffSession.
    session_token: Mapped[str] = mapped_column(String(32), default=new_session_token)
    created_by_id: Mapped[int | None] = mapped_column(BigIntId)
    # The window the account may be used in (any role; auditors' usually is one): from
    # ``access_starts_at`` (None: at once) until ``access_expires_at`` (None: no end).
    access_starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    access_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Which tickets an auditor may read (crm.auth.scope): "all"; "received", those
    # received in [scope_received_from, scope_received_before); or "tickets", the ids
    # in scope_ticket_ids. Other roles always read every ticket.
    scope_kind: Mapped[str] = mapped_column(String(16), default="all")
    scope_received_from: Mapped[datetime | None] = mapped_column(UTCDateTime)
    scope_received_before: Mapped[datetime | None] = mapped_column(UTCDateTime)
    scope_ticket_ids: Mapped[list[int] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Two-step sign-in (crm.auth.two_factor): the authenticator's secret, encrypted; when
    # it was turned on; the time step of the last code used (a code works once); the
    # unused recovery codes, as SHA-256 digests.
    totp_secret: Mapped[str | None] = mapped_column(String(200))
    totp_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    recovery_codes: Mapped[list[str] | None] = mapped_column(JSON)

    # The secret of the StaffSession this object was signed in or loaded for; not a
    # column: the cookie holds it, the database only its digest.
    session_secret = None

    def get_id(self) -> str:
        """The session cookie's identity: user, the user's session generation, and the
        secret of this one session (see crm.auth.sessions)."""
        return f"{self.id}:{self.session_token}:{self.session_secret}"

    def access_state(self, now: datetime | None = None) -> str:
        """Where ``now`` falls in the account's window: "not_started", "ended" or "open"."""
        now = now or utcnow()
        if self.access_starts_at is not None and now < self.access_starts_at:
            return "not_started"
        if self.access_expires_at is not None and self.access_expires_at <= now:
            return "ended"
        return "open"

    @property
    def is_active(self) -> bool:
        """Not deactivated, and inside its access window now."""
        return self.active and self.access_state() == "open"


class StaffSession(TenantScoped, db.Model):
    """One signed-in browser of a staff user. The cookie carries a random secret; only
    its SHA-256 is stored, and a session ends for good at logout or when idle too long."""

    __tablename__ = "staff_sessions"
    __table_args__ = (
        UniqueConstraint("tenant_id", "secret_digest"),
        Index(None, "tenant_id", "user_id"),
        tenant_fk(["user_id"], "users"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigIntId)
    secret_digest: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Why it ended: crm.auth.sessions.EndReason.
    end_reason: Mapped[str | None] = mapped_column(String(16))
    # Where and in what browser it was started, for the user's session list.
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(300))


class PasswordReset(TenantScoped, db.Model):
    """A link to choose a new password: asked for on the sign-in page, or sent by an admin
    (``requested_by_id``). Its token is made when the email is handed to the mail server
    (``crm.auth.resets.link_for``), and only the token's SHA-256 is kept; it works once,
    until ``expires_at``."""

    __tablename__ = "password_resets"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        UniqueConstraint("tenant_id", "token_digest"),
        Index(None, "tenant_id", "user_id"),
        tenant_fk(["user_id"], "users"),
        tenant_fk(["requested_by_id"], "users"),
        tenant_fk(["outbox_message_id"], "outbox_messages"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigIntId)
    requested_by_id: Mapped[int | None] = mapped_column(BigIntId)
    outbox_message_id: Mapped[int | None] = mapped_column(BigIntId)
    token_digest: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class FailureCount:
    """Failed sign-ins counted in a window, and the lock they led to."""

    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class LoginThrottle(FailureCount, TenantScoped, db.Model):
    """Failed sign-ins per email and source address (both by digest, the email existing
    or not): a stranger's guesses lock the stranger's address out of that account, not
    the account's owner at theirs, and the answer is the same whether or not it exists."""

    __tablename__ = "login_throttles"
    __table_args__ = (PrimaryKeyConstraint("tenant_id", "email_digest", "source_digest"),)

    email_digest: Mapped[str] = mapped_column(String(64))
    source_digest: Mapped[str] = mapped_column(String(64))


class LoginSourceThrottle(FailureCount, TenantScoped, db.Model):
    """Failed sign-ins per source address, whatever the email: one address trying many
    emails is slowed down to a stop."""

    __tablename__ = "login_source_throttles"
    __table_args__ = (PrimaryKeyConstraint("tenant_id", "source_digest"),)

    source_digest: Mapped[str] = mapped_column(String(64))
