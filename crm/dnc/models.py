"""Do-not-contact entries: a phone number or an email address, why, from where, and by
whom; a removal keeps the row, with who removed it and why."""

import enum
from datetime import datetime

from sqlalchemy import Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from crm.columns import UTCDateTime, utcnow
from crm.extensions import db
from tenants import BigIntId, TenantScoped, tenant_fk


class EntryKind(enum.StrEnum):
    PHONE = "phone"
    EMAIL = "email"


class EntrySource(enum.StrEnum):
    CALL = "call"  # the person asked on a call
    REPORT_12321 = "12321"  # a complaint through the 12321 reporting centre
    STOP_LINK = "stop_link"  # the "stop contacting me" link of a receipt or email
    IMPORT = "import"
    STAFF = "staff"


class DoNotContact(TenantScoped, db.Model):
    __tablename__ = "do_not_contact"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        tenant_fk(["added_by_id"], "users"),
        tenant_fk(["removed_by_id"], "users"),
        # One standing entry per number or address; removed ones stay as history.
        Index(
            "uq_do_not_contact_standing",
            "tenant_id",
            "kind",
            "value",
            unique=True,
            postgresql_where=text("removed_at IS NULL"),
            sqlite_where=text("removed_at IS NULL"),
        ),
        Index(None, "tenant_id", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    value: Mapped[str] = mapped_column(String(254))  # E.164, or the address in lower case
    reason: Mapped[str] = mapped_column(String(500))
    source: Mapped[str] = mapped_column(String(16))
    added_by_id: Mapped[int | None] = mapped_column(BigIntId)
    # The lead whose stop link or refused call added it, if any.
    lead_id: Mapped[int | None] = mapped_column(BigIntId)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    removed_by_id: Mapped[int | None] = mapped_column(BigIntId)
    removal_reason: Mapped[str | None] = mapped_column(String(500))
