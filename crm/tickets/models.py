"""Tickets, their threads, canned replies, and used form-submission tokens."""

import enum
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm.columns import UTCDateTime, utcnow
from crm.customers.models import Customer
from crm.extensions import db
from tenants import BigIntId, TenantScoped, tenant_fk


class Kind(enum.StrEnum):
    REFUND = "refund"
    COMPLAINT = "complaint"
    INQUIRY = "inquiry"


class Channel(enum.StrEnum):
    WEB_FORM = "web_form"
    PHONE = "phone"
    EMAIL = "email"
    API = "api"
    REGULATOR_REFERRAL = "regulator_referral"


class Priority(enum.StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class Status(enum.StrEnum):
    NEW = "new"
    OPEN = "open"
    AWAITING_CUSTOMER = "awaiting_customer"
    PENDING_APPROVAL = "pending_approval"  # a refund decision waits for a manager
    RESOLVED = "resolved"
    CLOSED = "closed"
    WITHDRAWN = "withdrawn"


OPEN_STATES = frozenset({Status.NEW, Status.OPEN, Status.AWAITING_CUSTOMER, Status.PENDING_APPROVAL})

# new → open → awaiting_customer ⇄ open → resolved → closed; resolved → open (reopen);
# a refund decision a manager must approve: pending_approval → resolved, or back to open;
# withdrawn from any open state.
DECIDING = frozenset({Status.PENDING_APPROVAL, Status.RESOLVED, Status.WITHDRAWN})
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.NEW: frozenset({Status.OPEN, Status.AWAITING_CUSTOMER, *DECIDING}),
    Status.OPEN: frozenset({Status.AWAITING_CUSTOMER, *DECIDING}),
    Status.AWAITING_CUSTOMER: frozenset({Status.OPEN, *DECIDING}),
    Status.PENDING_APPROVAL: frozenset({Status.OPEN, Status.RESOLVED, Status.WITHDRAWN}),
    Status.RESOLVED: frozenset({Status.OPEN, Status.CLOSED}),
    Status.CLOSED: frozenset(),
    Status.WITHDRAWN: frozenset(),
}


class Reason(enum.StrEnum):
    SERVICE_NOT_AS_DESCRIBED = "service_not_as_described"
    UNUSED_BALANCE = "unused_balance"
    CANCELLED_CONTRACT = "cancelled_contract"
    UNAUTHORIZED_CHARGE = "unauthorized_charge"
    DUPLICATE_CHARGE = "duplicate_charge"
    OTHER = "other"


@dataclass(frozen=True)
class Requester:
    """Who asked, exactly as they gave their details for this ticket: what staff see and
    where mail about the ticket goes. The linked customer record is history only."""

    name: str
    phone: str | None
    email: str | None
    account_ref: str | None
    locale: str


class Ticket(TenantScoped, db.Model):
    __tablename__ = "tickets"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        UniqueConstraint("tenant_id", "number"),
        tenant_fk(["customer_id"], "customers"),
        tenant_fk(["assignee_id"], "users"),
        tenant_fk(["merged_into_id"], "tickets"),
        tenant_fk(["policy_version_id"], "policy_versions"),
        # The queue: a view filters by status (and assignee), then pages by age.
        Index(None, "tenant_id", "status", "created_at", "id"),
        Index(None, "tenant_id", "assignee_id", "status", "created_at", "id"),
        Index(None, "tenant_id", "created_at", "id"),
        Index(None, "tenant_id", "customer_id"),
        Index(None, "tenant_id", "account_ref"),
        Index(None, "tenant_id", "requester_email"),
        # "Breached", "breaching soon" and the sort by next due time.
        Index(None, "tenant_id", "due_at", "id"),
    )
    # Server defaults are not read back: the only one is the search index's.
    __mapper_args__ = {"eager_defaults": False}  # noqa: RUF012

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    number: Mapped[int] = mapped_column(BigInteger)
    reference: Mapped[str] = mapped_column(String(24))  # e.g. RF-1042, as shown to humans
    kind: Mapped[str] = mapped_column(String(16), default=Kind.REFUND)
    channel: Mapped[str] = mapped_column(String(24), default=Channel.WEB_FORM)
    priority: Mapped[str] = mapped_column(String(8), default=Priority.NORMAL)
    status: Mapped[str] = mapped_column(String(24), default=Status.NEW)
    reason: Mapped[str | None] = mapped_column(String(32))
    customer_id: Mapped[int] = mapped_column(BigIntId)
    # The requester's details as submitted for this ticket (the account is ``account_ref``).
    # Never taken from, nor written to, another submission's records.
    requester_name: Mapped[str] = mapped_column(String(200))
    requester_phone: Mapped[str | None] = mapped_column(String(20))  # E.164
    requester_email: Mapped[str | None] = mapped_column(String(254))
    requester_locale: Mapped[str] = mapped_column(String(16), default="zh_CN")
    assignee_id: Mapped[int | None] = mapped_column(BigIntId)
    account_ref: Mapped[str | None] = mapped_column(String(100))
    purchase_date: Mapped[date | None] = mapped_column(Date)
    amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    # The first-response deadline, as promised on the customer's receipt.
    respond_by: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The nearest deadline of a running clock, and when that clock warns (SLA clocks).
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    warn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    needs_manager: Mapped[bool] = mapped_column(Boolean, default=False)
    # Taken outside: a consumer association, the 12315 platform, a regulator or a court.
    escalated: Mapped[bool] = mapped_column(Boolean, default=False)
    # The refund policy version in force when the request came in: what the customer saw.
    policy_version_id: Mapped[int | None] = mapped_column(BigIntId)
    merged_into_id: Mapped[int | None] = mapped_column(BigIntId)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When the request truly came in, if staff logged it later (regulatory deadlines count
    # from it); None: when it was logged, ``created_at``.
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The search index's terms (``crm.tickets.search``), on PostgreSQL only (SQLite keeps
    # them in a table of its own). Never read through the ORM; mapped so that a new
    # ticket's INSERT can carry its first message's terms.
    # (The server default keeps it out of the INSERTs that do not set it.)
    search_vector: Mapped[str] = mapped_column(
        TSVECTOR().with_variant(Text(), "sqlite"), server_default="", deferred=True, deferred_raiseload=True
    )

    # History only: who else asked under the same record. Ids are unique across tenants,
    # so the id alone joins; the composite key above keeps the reference inside the tenant.
    customer: Mapped[Customer] = relationship(
        primaryjoin="Ticket.customer_id == Customer.id",
        foreign_keys=[customer_id],
        viewonly=True,
        lazy="select",
    )

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATES

    @property
    def receipt_time(self) -> datetime:
        return self.received_at or self.created_at

    @property
    def requester(self) -> Requester:
        return Requester(
            self.requester_name,
            self.requester_phone,
            self.requester_email,
            self.account_ref,
            self.requester_locale,
        )


class EntryKind(enum.StrEnum):
    PUBLIC_REPLY = "public_reply"
    INTERNAL_NOTE = "internal_note"
    CALL_LOG = "call_log"
    INBOUND_MESSAGE = "inbound_message"
    OUTBOUND_EMAIL = "outbound_email"
    STATUS_CHANGE = "status_change"
    SYSTEM_EVENT = "system_event"


# What the customer's tracking page may show; everything else is staff-only.
PUBLIC_KINDS = frozenset({EntryKind.PUBLIC_REPLY, EntryKind.INBOUND_MESSAGE, EntryKind.STATUS_CHANGE})


class ThreadEntry(TenantScoped, db.Model):
    __tablename__ = "thread_entries"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        tenant_fk(["ticket_id"], "tickets"),
        tenant_fk(["author_user_id"], "users"),
        Index(None, "tenant_id", "ticket_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(BigIntId)
    kind: Mapped[str] = mapped_column(String(24))
    # "staff", "customer" or "system"
    author_kind: Mapped[str] = mapped_column(String(16))
    author_user_id: Mapped[int | None] = mapped_column(BigIntId)
    body: Mapped[str] = mapped_column(Text, default="")
    # Structured detail: a call's direction/number/duration/outcome, a status change's
    # from/to, an email's recipient and subject.
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def is_public(self) -> bool:
        return self.kind in PUBLIC_KINDS


class CannedReply(TenantScoped, db.Model):
    """A manager's macro; placeholders {customer_name}, {ticket_number}, {deadline}."""

    __tablename__ = "canned_replies"
    __table_args__ = (UniqueConstraint("tenant_id", "id"), UniqueConstraint("tenant_id", "title"))

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    title: Mapped[str] = mapped_column(String(100))
    body: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class SubmissionUse(TenantScoped, db.Model):
    """A hosted-form submission token, once used: a second submit finds the ticket."""

    __tablename__ = "submission_uses"
    __table_args__ = (
        PrimaryKeyConstraint("tenant_id", "nonce"),
        tenant_fk(["ticket_id"], "tickets"),
    )

    nonce: Mapped[str] = mapped_column(String(64))
    ticket_id: Mapped[int | None] = mapped_column(BigIntId)  # the ticket it made, claimed with it
    used_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=1)


class TrackingLink(TenantScoped, db.Model):
    """A customer's secret link to a ticket. Only the token's SHA-256 is kept; every email
    to the customer carries a fresh one, so any of them opens the ticket."""

    __tablename__ = "tracking_links"
    __table_args__ = (
        PrimaryKeyConstraint("token_hash"),
        tenant_fk(["ticket_id"], "tickets"),
        Index(None, "tenant_id", "ticket_id"),
    )

    token_hash: Mapped[str] = mapped_column(String(64))
    ticket_id: Mapped[int] = mapped_column(BigIntId)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class BulkRun(TenantScoped, db.Model):
    """One change asked for many tickets at once (crm.tickets.bulk): run as a job, in
    batches, each ticket's change its own audit event; its progress shown on a page."""

    __tablename__ = "bulk_runs"
    __table_args__ = (UniqueConstraint("tenant_id", "id"), tenant_fk(["requested_by_id"], "users"))

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    requested_by_id: Mapped[int] = mapped_column(BigIntId)
    # "assign", "priority", "note" or "close", and what it sets (assignee id, priority, note text).
    action: Mapped[str] = mapped_column(String(16))
    value: Mapped[str | None] = mapped_column(Text)
    ticket_ids: Mapped[list[int]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued, running, done
    done: Mapped[int] = mapped_column(Integer, default=0)
    changed: Mapped[int] = mapped_column(Integer, default=0)
    # [{"ticket_id", "reference", "reason"}] of tickets left as they were, and why.
    skipped: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def total(self) -> int:
        return len(self.ticket_ids)

    @property
    def percent(self) -> int:
        return 100 if not self.total else int(100 * self.done / self.total)


class SavedView(TenantScoped, db.Model):
    """A user's own named queue filter: the queue's parameters, as its address holds them."""

    __tablename__ = "saved_views"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        UniqueConstraint("tenant_id", "user_id", "name"),
        tenant_fk(["user_id"], "users"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigIntId)
    name: Mapped[str] = mapped_column(String(60))
    params: Mapped[dict[str, str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
