"""Versioned SLA configuration, the clocks that run on tickets and leads, and the in-app
notifications the sweep leaves for staff."""

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from crm.columns import UTCDateTime, utcnow
from crm.extensions import db
from tenants import BigIntId, TenantScoped, tenant_fk

UNKEPT_MET_TIME = (
    "state = 'met' AND met_business_seconds IS NULL AND unit = 'business_minutes' "
    "AND calendar_version_id IS NOT NULL"
)


class ConfigKind(enum.StrEnum):
    CALENDAR = "calendar"  # key: the calendar's name
    SLA_POLICY = "sla_policy"  # key: "default"
    DEADLINES = "deadlines"  # key: "default"; which regulatory profile applies where


class ConfigVersion(TenantScoped, db.Model):
    """One immutable version of a calendar, an SLA policy or the deadline rules. A change
    is a new row with the next version number; clocks point at the row they started
    with, so a later change never rewrites an old ticket's figures."""

    __tablename__ = "config_versions"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        UniqueConstraint("tenant_id", "kind", "key", "version"),
        tenant_fk(["created_by_id"], "users"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(60))
    version: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    sha256: Mapped[str] = mapped_column(String(64))
    created_by_id: Mapped[int | None] = mapped_column(BigIntId)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def label(self) -> str:
        return f"{self.key} v{self.version}"


class Metric(enum.StrEnum):
    FIRST_RESPONSE = "first_response"
    NEXT_RESPONSE = "next_response"
    RESOLUTION = "resolution"
    # Regulatory deadlines: counted from receipt, never paused.
    REGULATORY_RESPONSE = "regulatory_response"
    REGULATORY_FINAL = "regulatory_final"
    REGULATORY_SUMMARY = "regulatory_summary"  # a marker: resolved within N business days
    # The outer limit where the rules allow more time in exceptional cases, after a
    # holding reply (UK payment services: 35 business days instead of 15).
    REGULATORY_FINAL_LATEST = "regulatory_final_latest"
    FIRST_CONTACT = "first_contact"  # leads
    PAYOUT = "payout"  # an approved refund paid within the policy's payout days
    ESCALATION = "escalation"  # the deadline an outside body set


REGULATORY_METRICS = frozenset(
    {
        Metric.REGULATORY_RESPONSE,
        Metric.REGULATORY_FINAL,
        Metric.REGULATORY_SUMMARY,
        Metric.REGULATORY_FINAL_LATEST,
    }
)


class ClockState(enum.StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    MET = "met"
    STOPPED = "stopped"  # the request went away (withdrawn, closed, merged)


class Unit(enum.StrEnum):
    BUSINESS_MINUTES = "business_minutes"
    BUSINESS_DAYS = "business_days"
    CALENDAR_DAYS = "calendar_days"


class Clock(TenantScoped, db.Model):
    """One deadline on one subject (a ticket or a lead), with what it was measured by."""

    __tablename__ = "clocks"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        tenant_fk(["config_version_id"], "config_versions"),
        tenant_fk(["calendar_version_id"], "config_versions"),
        Index(None, "tenant_id", "subject_type", "subject_id"),
        # Reports: the clocks that became due in a period.
        Index(None, "tenant_id", "due_at"),
        # The sweep's index: only clocks with something still to detect are in it, so its
        # size and the sweep's cost follow the clocks that are running, not all clocks.
        Index(
            "ix_clocks_check_at",
            "check_at",
            postgresql_where=text("check_at IS NOT NULL"),
            sqlite_where=text("check_at IS NOT NULL"),
        ),
        # Met clocks whose business time to meet is not kept yet (met before revision
        # 0027): the SLA report asks whether a period has any; empty once backfilled.
        Index(
            "ix_clocks_met_time_unkept",
            "tenant_id",
            "due_at",
            postgresql_where=text(UNKEPT_MET_TIME),
            sqlite_where=text(UNKEPT_MET_TIME),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    subject_type: Mapped[str] = mapped_column(String(16))  # "ticket" or "lead"
    subject_id: Mapped[int] = mapped_column(BigInteger)
    metric: Mapped[str] = mapped_column(String(24))
    state: Mapped[str] = mapped_column(String(12), default=ClockState.RUNNING)
    # What it was started under: the policy (or deadline rules) version and the rule or
    # profile within it, and the calendar version the business time is counted on.
    config_version_id: Mapped[int | None] = mapped_column(BigIntId)
    rule: Mapped[str | None] = mapped_column(String(40))  # a rule's position, or a profile code
    calendar_version_id: Mapped[int | None] = mapped_column(BigIntId)
    unit: Mapped[str] = mapped_column(String(20))
    target: Mapped[int] = mapped_column(Integer)
    warn_percent: Mapped[int | None] = mapped_column(Integer)
    # A marker clock is reported but triggers no warnings, breaches or actions.
    alerts: Mapped[bool] = mapped_column(Boolean, default=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # None while paused
    warn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    warned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    breached_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    met_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Business seconds from start to met, pauses left out (None for a clock counted in
    # calendar time, or on no calendar): the SLA report's time to meet.
    met_business_seconds: Mapped[int | None] = mapped_column(BigInteger)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paused_seconds: Mapped[int] = mapped_column(BigInteger, default=0)  # business seconds
    # [{"from": iso, "to": iso | null, "seconds": business seconds, "why": status}]
    pauses: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # When the sweep next has something to detect here (a warning, then a breach).
    check_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Notification(TenantScoped, db.Model):
    """An in-app notice for one staff member: a clock's warning or breach (one per user,
    clock and event at most), or a ticket event with no clock (a customer's reply, "not
    satisfied", a decision waiting for approval; see crm.notify.staff)."""

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        UniqueConstraint("tenant_id", "user_id", "clock_id", "event"),
        tenant_fk(["user_id"], "users"),
        tenant_fk(["clock_id"], "clocks"),
        Index(None, "tenant_id", "user_id", "read_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigIntId)
    clock_id: Mapped[int | None] = mapped_column(BigIntId)
    event: Mapped[str] = mapped_column(String(16))  # "warned", "breached" or a ticket event
    subject_type: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
