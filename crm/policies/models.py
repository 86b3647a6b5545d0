"""Refund policy versions: drafts until published, immutable after."""

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crm.columns import UTCDateTime, utcnow
from crm.extensions import db
from tenants import BigIntId, TenantScoped, tenant_fk


class PolicyStatus(enum.StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"


class PolicyVersion(TenantScoped, db.Model):
    """One version of the tenant's refund policy: its text per locale and its terms.

    Publishing fixes it for good (the application refuses changes, and on PostgreSQL a
    trigger does too) and records its SHA-256; it takes effect at ``effective_from``."""

    __tablename__ = "policy_versions"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        UniqueConstraint("tenant_id", "number"),
        tenant_fk(["created_by_id"], "users"),
        tenant_fk(["published_by_id"], "users"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=PolicyStatus.DRAFT)
    # {"en": markdown, "zh_CN": markdown}
    texts: Mapped[dict[str, str]] = mapped_column(JSON)
    # crm.policies.terms.Terms.to_json()
    terms: Mapped[dict[str, Any]] = mapped_column(JSON)
    sha256: Mapped[str | None] = mapped_column(String(64))
    effective_from: Mapped[datetime | None] = mapped_column(UTCDateTime)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    published_by_id: Mapped[int | None] = mapped_column(BigIntId)
    created_by_id: Mapped[int | None] = mapped_column(BigIntId)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def is_published(self) -> bool:
        return self.status == PolicyStatus.PUBLISHED
