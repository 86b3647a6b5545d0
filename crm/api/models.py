"""API keys, and the results of idempotent requests kept for their retries."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, PrimaryKeyConstraint, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crm.columns import UTCDateTime, utcnow
from crm.extensions import db
from tenants import BigIntId, TenantScoped, tenant_fk

SCOPES = (
    "tickets:read",
    "tickets:write",
    "leads:read",
    "leads:write",
    "calls:write",
    "dnc:read",
    "dnc:write",
    "reports:read",
    "audit:read",
)


class ApiKey(TenantScoped, db.Model):
    """A key is shown once; only its SHA-256 is kept, with its first characters to tell
    keys apart on the page."""

    __tablename__ = "api_keys"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        UniqueConstraint("key_hash"),
        tenant_fk(["created_by_id"], "users"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    key_hash: Mapped[str] = mapped_column(String(64))
    prefix: Mapped[str] = mapped_column(String(12))
    created_by_id: Mapped[int | None] = mapped_column(BigIntId)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class IdempotentResult(TenantScoped, db.Model):
    """The first answer to a creating call with an ``Idempotency-Key``: a retry with the
    same key gets it again, and nothing is made twice."""

    __tablename__ = "api_idempotency"
    __table_args__ = (
        PrimaryKeyConstraint("tenant_id", "api_key_id", "idempotency_key"),
        tenant_fk(["api_key_id"], "api_keys"),
        Index(None, "tenant_id", "created_at"),
    )

    api_key_id: Mapped[int] = mapped_column(BigIntId)
    idempotency_key: Mapped[str] = mapped_column(String(200))
    # The request's method and path and a digest of its body: the same key with another
    # request is refused.
    request_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[int | None] = mapped_column(Integer)  # None while the first one runs
    body: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    location: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
