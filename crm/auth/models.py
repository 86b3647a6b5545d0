"""Staff users and the per-email sign-in throttle."""

import secrets
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import Boolean, Integer, PrimaryKeyConstraint, String, UniqueConstraint
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
    # Part of the session cookie's identity: rotating it ends every session of the user.
    session_token: Mapped[str] = mapped_column(String(32), default=new_session_token)
    created_by_id: Mapped[int | None] = mapped_column(BigIntId)
    # Auditors' access is time-boxed; None means no end.
    access_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def get_id(self) -> str:
        return f"{self.id}:{self.session_token}"

    @property
    def is_active(self) -> bool:
        expired = self.access_expires_at is not None and self.access_expires_at <= utcnow()
        return self.active and not expired


class LoginThrottle(TenantScoped, db.Model):
    """Failed sign-ins per email (by digest, existing or not), so the lockout behaves the
    same whether or not the account exists."""

    __tablename__ = "login_throttles"
    __table_args__ = (PrimaryKeyConstraint("tenant_id", "email_digest"),)

    email_digest: Mapped[str] = mapped_column(String(64))
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
