"""Attachments: a file's metadata, tied to the thread entry that brought it."""

from datetime import datetime

from sqlalchemy import BigInteger, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crm.columns import UTCDateTime, utcnow
from crm.extensions import db
from tenants import BigIntId, TenantScoped, tenant_fk


class Attachment(TenantScoped, db.Model):
    __tablename__ = "attachments"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        tenant_fk(["ticket_id"], "tickets"),
        tenant_fk(["entry_id"], "thread_entries"),
        Index(None, "tenant_id", "ticket_id"),
        Index(None, "tenant_id", "entry_id"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(BigIntId)
    entry_id: Mapped[int] = mapped_column(BigIntId)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    # Detected from the bytes, never taken from the upload's name or declared type.
    content_type: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
