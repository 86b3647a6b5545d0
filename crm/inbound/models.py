"""What the desk has received by email, by key, so a message delivered twice files once."""

from datetime import datetime

from sqlalchemy import PrimaryKeyConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from crm.columns import UTCDateTime, utcnow
from crm.extensions import db
from tenants import TenantScoped


class InboundMessage(TenantScoped, db.Model):
    __tablename__ = "inbound_messages"
    __table_args__ = (PrimaryKeyConstraint("tenant_id", "message_key"),)

    # SHA-256 of the Message-ID, else of the whole message.
    message_key: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))  # filed, new, ignored
    reference: Mapped[str | None] = mapped_column(String(24))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
