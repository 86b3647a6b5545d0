"""Refund decisions, payouts and outside escalations, each on a ticket."""

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crm.columns import UTCDateTime, utcnow
from crm.extensions import db
from tenants import BigIntId, TenantScoped, tenant_fk


class Outcome(enum.StrEnum):
    APPROVED_FULL = "approved_full"
    APPROVED_PARTIAL = "approved_partial"
    DENIED = "denied"


class DecisionStatus(enum.StrEnum):
    PENDING_APPROVAL = "pending_approval"  # waiting for a second person, a manager
    APPROVED = "approved"
    REJECTED = "rejected"  # the second person sent it back


class RefundDecision(TenantScoped, db.Model):
    """What the agent decided, under which policy version and clause, with the
    calculator's suggestion beside it; then who approved it and when the customer was told."""

    __tablename__ = "refund_decisions"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        tenant_fk(["ticket_id"], "tickets"),
        tenant_fk(["policy_version_id"], "policy_versions"),
        tenant_fk(["proposed_by_id"], "users"),
        tenant_fk(["decided_by_id"], "users"),
        Index(None, "tenant_id", "ticket_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(BigIntId)
    policy_version_id: Mapped[int] = mapped_column(BigIntId)
    # Why another version than the applicable one was used (required then).
    version_reason: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(24))
    reason_code: Mapped[str] = mapped_column(String(40))
    clause: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3))
    paid_minor: Mapped[int] = mapped_column(BigInteger)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    suggested_minor: Mapped[int] = mapped_column(BigInteger)
    # The calculator's inputs and its lines as the agent saw them.
    calculation: Mapped[dict[str, Any]] = mapped_column(JSON)
    differs_reason: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(24))
    proposed_by_id: Mapped[int] = mapped_column(BigIntId)
    proposed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_by_id: Mapped[int | None] = mapped_column(BigIntId)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision_note: Mapped[str | None] = mapped_column(Text)
    final_response_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def approved_amount_minor(self) -> int:
        approved = self.status == DecisionStatus.APPROVED and self.outcome != Outcome.DENIED
        return self.amount_minor if approved else 0


class Payout(TenantScoped, db.Model):
    """Money actually paid back, against an approved decision."""

    __tablename__ = "payouts"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        tenant_fk(["ticket_id"], "tickets"),
        tenant_fk(["decision_id"], "refund_decisions"),
        tenant_fk(["receipt_id"], "attachments"),
        tenant_fk(["recorded_by_id"], "users"),
        Index(None, "tenant_id", "ticket_id"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(BigIntId)
    decision_id: Mapped[int] = mapped_column(BigIntId)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    method: Mapped[str] = mapped_column(String(24))
    reference: Mapped[str] = mapped_column(String(100))
    paid_at: Mapped[datetime] = mapped_column(UTCDateTime)
    receipt_id: Mapped[int | None] = mapped_column(BigIntId)
    recorded_by_id: Mapped[int | None] = mapped_column(BigIntId)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OutsideBody(enum.StrEnum):
    CONSUMER_ASSOCIATION = "consumer_association"
    PLATFORM_12315 = "platform_12315"
    TELECOM_REGULATOR = "telecom_regulator"
    COURT = "court"


class EscalationOutcome(enum.StrEnum):
    """What the outside body concluded."""

    FOR_CUSTOMER = "for_customer"  # it upheld the customer's complaint
    FOR_PROVIDER = "for_provider"  # it found for the provider
    SETTLED = "settled"  # mediated: both sides agreed
    WITHDRAWN = "withdrawn"  # the customer withdrew it


class Escalation(TenantScoped, db.Model):
    """The customer took the matter to a body outside the provider, which set a deadline."""

    __tablename__ = "escalations"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        tenant_fk(["ticket_id"], "tickets"),
        tenant_fk(["recorded_by_id"], "users"),
        tenant_fk(["clock_id"], "clocks"),
        Index(None, "tenant_id", "ticket_id"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(BigIntId)
    body: Mapped[str] = mapped_column(String(32))
    case_number: Mapped[str] = mapped_column(String(100))
    received_on: Mapped[date] = mapped_column(Date)
    deadline_on: Mapped[date] = mapped_column(Date)
    clock_id: Mapped[int | None] = mapped_column(BigIntId)
    recorded_by_id: Mapped[int] = mapped_column(BigIntId)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # What the body concluded, and on which day (None while it is pending).
    outcome: Mapped[str | None] = mapped_column(String(16))
    outcome_on: Mapped[date | None] = mapped_column(Date)
    outcome_note: Mapped[str | None] = mapped_column(Text)
