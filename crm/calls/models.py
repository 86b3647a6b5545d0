"""A dialer's call record, kept as it was posted, with where it was filed."""

import enum
from datetime import datetime

from sqlalchemy import Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crm.columns import UTCDateTime, utcnow
from crm.extensions import db
from tenants import BigIntId, TenantScoped, tenant_fk


class CallState(enum.StrEnum):
    FILED = "filed"  # on a ticket or a lead, matched when posted or filed by staff
    UNMATCHED = "unmatched"  # waiting for staff
    DISMISSED = "dismissed"  # staff said it belongs nowhere, with the reason


class Unmatched(enum.StrEnum):
    """Why a call was not filed when it came (kept as a code, shown in the reader's language)."""

    NO_MATCH = "no_match"
    SEVERAL_TICKETS = "several_tickets"
    SEVERAL_LEADS = "several_leads"
    NOT_ALLOWED = "not_allowed"  # the lead refuses an outbound call: no consent, or listed


class RecordingState(enum.StrEnum):
    STORED = "stored"
    PENDING = "pending"  # given by URL, not fetched yet
    FAILED = "failed"  # the URL did not give the bytes its SHA-256 promised


class CallRecord(TenantScoped, db.Model):
    __tablename__ = "call_records"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        tenant_fk(["ticket_id"], "tickets"),
        tenant_fk(["lead_id"], "leads"),
        tenant_fk(["api_key_id"], "api_keys"),
        tenant_fk(["resolved_by_id"], "users"),
        Index(None, "tenant_id", "state", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(100))  # the dialer's own id
    direction: Mapped[str] = mapped_column(String(8))
    from_number: Mapped[str] = mapped_column(String(20))  # E.164
    to_number: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    duration_seconds: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(12))
    # Why it was not filed when it came (an ``Unmatched`` code).
    unmatched_reason: Mapped[str | None] = mapped_column(String(300))
    ticket_id: Mapped[int | None] = mapped_column(BigIntId)
    lead_id: Mapped[int | None] = mapped_column(BigIntId)
    # The ticket's call-log entry or the lead's call activity.
    entry_id: Mapped[int | None] = mapped_column(BigIntId)
    recording_state: Mapped[str | None] = mapped_column(String(8))
    recording_sha256: Mapped[str | None] = mapped_column(String(64))
    recording_url: Mapped[str | None] = mapped_column(String(500))
    recording_size: Mapped[int | None] = mapped_column(Integer)
    recording_type: Mapped[str | None] = mapped_column(String(40))
    recording_name: Mapped[str | None] = mapped_column(String(120))
    recording_error: Mapped[str | None] = mapped_column(String(300))
    api_key_id: Mapped[int | None] = mapped_column(BigIntId)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_by_id: Mapped[int | None] = mapped_column(BigIntId)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    dismissed_reason: Mapped[str | None] = mapped_column(String(500))
