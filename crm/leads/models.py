"""Leads, the requests that brought them, what sales did with them, and the proof of
consent each request gave."""

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Computed,
    Date,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from crm.columns import UTCDateTime, utcnow
from crm.customers.models import PHONE_TAIL
from crm.extensions import db
from tenants import BigIntId, TenantScoped, tenant_fk


class Stage(enum.StrEnum):
    NEW = "new"
    CONTACTED = "contacted"
    QUALIFIED = "qualified"
    TRIAL = "trial"
    WON = "won"
    LOST = "lost"
    # Set by the desk after the tenant's number of unanswered attempts in a row.
    UNREACHABLE = "unreachable"


OPEN_STAGES = frozenset({Stage.NEW, Stage.CONTACTED, Stage.QUALIFIED, Stage.TRIAL, Stage.UNREACHABLE})
# new → contacted → qualified → trial → won | lost; a stage may be skipped forwards, and
# a lead may be lost from any open stage. An unreachable lead comes back when reached.
STAGE_TRANSITIONS: dict[Stage, frozenset[Stage]] = {
    Stage.NEW: frozenset({Stage.CONTACTED, Stage.QUALIFIED, Stage.TRIAL, Stage.WON, Stage.LOST}),
    Stage.CONTACTED: frozenset({Stage.QUALIFIED, Stage.TRIAL, Stage.WON, Stage.LOST}),
    Stage.QUALIFIED: frozenset({Stage.TRIAL, Stage.WON, Stage.LOST}),
    Stage.TRIAL: frozenset({Stage.WON, Stage.LOST}),
    Stage.UNREACHABLE: frozenset({Stage.CONTACTED, Stage.QUALIFIED, Stage.LOST}),
    Stage.WON: frozenset(),
    Stage.LOST: frozenset(),
}


class Source(enum.StrEnum):
    WEB_FORM = "web_form"
    IMPORT = "import"
    API = "api"
    STAFF = "staff"


class CallOutcome(enum.StrEnum):
    ANSWERED = "answered"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    VOICEMAIL = "voicemail"
    WRONG_NUMBER = "wrong_number"
    REFUSED = "refused"


UNANSWERED = frozenset({CallOutcome.NO_ANSWER, CallOutcome.BUSY, CallOutcome.VOICEMAIL})


class ActivityKind(enum.StrEnum):
    CALL = "call"
    NOTE = "note"
    EMAIL = "email"
    REQUEST = "request"  # the person asked (again): the form, an import, the API
    STAGE = "stage"
    ASSIGNMENT = "assignment"
    CONSENT = "consent"


class Purpose(enum.StrEnum):
    CONTACT = "contact"  # "... may call me about this request"
    MARKETING = "marketing"  # later offers


class Lead(TenantScoped, db.Model):
    __tablename__ = "leads"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        UniqueConstraint("tenant_id", "number"),
        tenant_fk(["assignee_id"], "users"),
        tenant_fk(["customer_id"], "customers"),
        # The pipeline's views: by stage (and assignee), paged by age.
        Index(None, "tenant_id", "stage", "created_at", "id"),
        Index(None, "tenant_id", "assignee_id", "stage", "created_at", "id"),
        Index(None, "tenant_id", "created_at", "id"),
        Index(None, "tenant_id", "first_contact_due_at", "id"),
        Index(None, "tenant_id", "phone"),
        Index(None, "tenant_id", "phone_tail"),
        Index(None, "tenant_id", "email"),
        Index(None, "tenant_id", "customer_id"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    number: Mapped[int] = mapped_column(Integer)
    reference: Mapped[str] = mapped_column(String(24))  # e.g. LD-1001
    stage: Mapped[str] = mapped_column(String(16), default=Stage.NEW)
    name: Mapped[str] = mapped_column(String(200))
    company: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(20))  # E.164
    phone_tail: Mapped[str | None] = mapped_column(String(4), Computed(PHONE_TAIL, persisted=True))
    email: Mapped[str | None] = mapped_column(String(254))
    need: Mapped[str | None] = mapped_column(Text)  # what the first request said
    source: Mapped[str] = mapped_column(String(16), default=Source.WEB_FORM)
    source_detail: Mapped[str | None] = mapped_column(String(100))  # an import's "source" column
    utm_source: Mapped[str | None] = mapped_column(String(100))
    utm_medium: Mapped[str | None] = mapped_column(String(100))
    utm_campaign: Mapped[str | None] = mapped_column(String(100))
    locale: Mapped[str] = mapped_column(String(16), default="zh_CN")
    assignee_id: Mapped[int | None] = mapped_column(BigIntId)
    # The customer record a won lead became (new or existing).
    customer_id: Mapped[int | None] = mapped_column(BigIntId)
    lost_reason: Mapped[str | None] = mapped_column(String(200))
    # When the person last asked to be called (a ticked consent box, or an imported
    # proof); None: no consent on record, so no call until one is recorded.
    contact_consent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    marketing_consent: Mapped[bool] = mapped_column(Boolean, default=False)
    # Unanswered calls since the last answered one (no answer, busy).
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The running first-contact clock's due time, for the "overdue" view; None once met.
    first_contact_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_contacted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    trial_starts_on: Mapped[date | None] = mapped_column(Date)
    trial_ends_on: Mapped[date | None] = mapped_column(Date)
    won_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Personal data removed on request; the consent proof stays for its retention period.
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def is_open(self) -> bool:
        return self.stage in OPEN_STAGES


class LeadRequest(TenantScoped, db.Model):
    """One time the person asked: the form (first or again), an import row, the API."""

    __tablename__ = "lead_requests"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        tenant_fk(["lead_id"], "leads"),
        Index(None, "tenant_id", "lead_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    lead_id: Mapped[int] = mapped_column(BigIntId)
    channel: Mapped[str] = mapped_column(String(16))
    need: Mapped[str | None] = mapped_column(Text)
    utm_source: Mapped[str | None] = mapped_column(String(100))
    utm_medium: Mapped[str | None] = mapped_column(String(100))
    utm_campaign: Mapped[str | None] = mapped_column(String(100))
    ip: Mapped[str | None] = mapped_column(String(45))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LeadActivity(TenantScoped, db.Model):
    """The lead's history as staff read it: calls, notes, emails, stage changes."""

    __tablename__ = "lead_activities"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        tenant_fk(["lead_id"], "leads"),
        tenant_fk(["author_user_id"], "users"),
        Index(None, "tenant_id", "lead_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    lead_id: Mapped[int] = mapped_column(BigIntId)
    kind: Mapped[str] = mapped_column(String(16))
    author_user_id: Mapped[int | None] = mapped_column(BigIntId)
    body: Mapped[str] = mapped_column(Text, default="")
    # A call's direction, outcome, duration and recording; an email's recipient and
    # subject; a stage change's from/to and reason.
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Consent(TenantScoped, db.Model):
    """Proof of one consent box as the person saw it: the exact text, its version and
    SHA-256, whether it was ticked, when, from where and through which channel. It
    outlives the lead's erasure until ``retain_until``."""

    __tablename__ = "consents"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        tenant_fk(["lead_id"], "leads"),
        tenant_fk(["lead_request_id"], "lead_requests"),
        Index(None, "tenant_id", "lead_id", "id"),
        Index(None, "tenant_id", "phone"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    lead_id: Mapped[int] = mapped_column(BigIntId)
    lead_request_id: Mapped[int | None] = mapped_column(BigIntId)
    purpose: Mapped[str] = mapped_column(String(16))
    given: Mapped[bool] = mapped_column(Boolean)
    text: Mapped[str] = mapped_column(Text)
    text_version: Mapped[str] = mapped_column(String(32))
    text_sha256: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    ip: Mapped[str | None] = mapped_column(String(45))
    # For a consent given elsewhere (an import's "yes:<reference>"): where its proof is.
    evidence_ref: Mapped[str | None] = mapped_column(String(200))
    # Who consented, as they gave it (kept with the proof, not with the lead).
    phone: Mapped[str | None] = mapped_column(String(20))
    email: Mapped[str | None] = mapped_column(String(254))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    retain_until: Mapped[datetime] = mapped_column(UTCDateTime)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class LeadSubmissionUse(TenantScoped, db.Model):
    """A trial-form submission token, once used: a second submit finds the lead."""

    __tablename__ = "lead_submission_uses"
    __table_args__ = (PrimaryKeyConstraint("tenant_id", "nonce"), tenant_fk(["lead_id"], "leads"))

    nonce: Mapped[str] = mapped_column(String(64))
    lead_id: Mapped[int | None] = mapped_column(BigIntId)
    used_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ImportStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class ImportRun(TenantScoped, db.Model):
    """A CSV import a manager started from the page: run as a job, with its progress and,
    once done, its counts and the rejected rows."""

    __tablename__ = "import_runs"
    __table_args__ = (UniqueConstraint("tenant_id", "id"), tenant_fk(["requested_by_id"], "users"))

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # "leads" or "dnc"
    requested_by_id: Mapped[int] = mapped_column(BigIntId)
    status: Mapped[str] = mapped_column(String(16), default=ImportStatus.QUEUED)
    file_name: Mapped[str | None] = mapped_column(String(100))  # a random name, deleted once read
    original_name: Mapped[str] = mapped_column(String(255))
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    imported: Mapped[int] = mapped_column(Integer, default=0)
    merged: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[list] = mapped_column(JSON, default=list)  # [[row, reason], ...], the first 1,000
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def percent(self) -> int:
        if self.status == ImportStatus.DONE:
            return 100
        return int(100 * self.done / self.total) if self.total else 0
