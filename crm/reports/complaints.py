"""The complaints return, modelled on the UK FCA's DISP 1 Annex 1, with a China block.

Complaints are the tickets of kind ``complaint`` or ``refund`` (a refund request is an
expression of dissatisfaction with a claim of loss), merged duplicates left out. A
complaint is **closed** when it is resolved, closed or withdrawn; one reopened counts
once, when it finally closes (``Ticket.resolved_at`` holds its last ending). **Upheld**
comes from the refund decision in force: approved in full, approved in part, denied.
The counting runs on ``ComplaintFact``s, built from the tables here and from the audit
trail alone in ``crm.reports.trail``.
"""

import functools
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select

from crm.extensions import db
from crm.refunds.models import DecisionStatus, Escalation, Payout, RefundDecision
from crm.reports.periods import Period
from crm.sla import versions
from crm.sla.deadlines import day_deadline
from crm.sla.models import Clock, ClockState, ConfigKind, Metric, Unit
from crm.tickets.models import Kind, Status, Ticket
from tenants import current_tenant_id

COMPLAINT_KINDS = (Kind.COMPLAINT, Kind.REFUND)
CLOSED = frozenset({Status.RESOLVED, Status.CLOSED, Status.WITHDRAWN})
OUTCOMES = ("approved_full", "approved_partial", "denied")
EIGHT_WEEKS = timedelta(weeks=8)
# The China block: the regulatory profile of each line.
CHINA_LINES = (
    ("cn-telecom", "telecom_15_days"),
    ("cn-12315-odr", "12315_10_working_days"),
    ("cn-12321", "12321_15_working_days"),
)


@dataclass(frozen=True)
class ComplaintFact:
    ticket_id: int
    reason: str | None
    received_at: datetime
    closed_at: datetime | None  # None while open
    outcome: str | None  # of the decision in force, if any
    # The profile of its regulatory final-answer clock, and whether that was met on time.
    profile: str | None = None
    met_on_time: bool | None = None


@dataclass
class Counts:
    outstanding_at_start: int = 0
    opened: int = 0
    closed_within_3_business_days: int = 0
    closed_within_8_weeks: int = 0
    closed_after_8_weeks: int = 0
    outstanding_at_end: int = 0
    outcomes: Counter = field(default_factory=Counter)

    @property
    def closed(self) -> int:
        return self.closed_within_3_business_days + self.closed_within_8_weeks + self.closed_after_8_weeks

    def share(self, outcome: str) -> float | None:
        decided = sum(self.outcomes[o] for o in OUTCOMES)
        return 100 * self.outcomes[outcome] / decided if decided else None

    def totals(self) -> dict:
        return {
            "outstanding_at_start": self.outstanding_at_start,
            "opened": self.opened,
            "closed_within_3_business_days": self.closed_within_3_business_days,
            "closed_within_8_weeks": self.closed_within_8_weeks,
            "closed_after_8_weeks": self.closed_after_8_weeks,
            "outstanding_at_end": self.outstanding_at_end,
            **{f"upheld_{outcome}": self.outcomes[outcome] for outcome in OUTCOMES},
            "no_decision": self.outcomes[None],
        }


@dataclass(frozen=True)
class EscalationFact:
    """An outside escalation: the body, the day it was received, and what the body
    concluded and when (None while pending)."""

    body: str
    received_on: date
    outcome: str | None = None
    decided_on: date | None = None

    def outcome_by(self, day: date) -> str:
        """Its outcome as it stood at the end of ``day``: ``pending`` before it came."""
        return self.outcome if self.outcome and self.decided_on and self.decided_on <= day else "pending"


@dataclass
class ComplaintsReturn:
    period: Period
    total: Counts
    by_reason: dict[str | None, Counts]
    redress_paid: dict[str, int]  # currency -> minor units
    china: dict[str, tuple[int, int]]  # line -> (on time, closed with that clock)
    escalations: dict[str, int]  # body -> count received in the period
    # (body, outcome at the period's end, or "pending") -> count received in the period
    escalation_outcomes: dict[tuple[str, str], int] = field(default_factory=dict)

    def totals(self) -> dict:
        return {
            **self.total.totals(),
            **{f"redress_{currency}": amount for currency, amount in sorted(self.redress_paid.items())},
            **{f"china_{line}": list(pair) for line, pair in sorted(self.china.items())},
            **{f"escalations_{body}": n for body, n in sorted(self.escalations.items())},
            **{
                f"escalations_{body}_{outcome}": n
                for (body, outcome), n in sorted(self.escalation_outcomes.items())
            },
        }


def count(
    facts: Iterable[ComplaintFact],
    period: Period,
    *,
    three_days_end,
    payouts: Iterable[tuple[str, int, datetime]] = (),
    escalations: Iterable[EscalationFact] = (),
) -> ComplaintsReturn:
    """``three_days_end(received_at)``: when the third business day after receipt ends.
    ``payouts``: (currency, minor units, paid at)."""
    start, end = period.start, period.end
    total = Counts()
    by_reason: dict[str | None, Counts] = defaultdict(Counts)
    china = {line: (0, 0) for _profile, line in CHINA_LINES}
    lines = dict(CHINA_LINES)
    for fact in facts:
        for counts in (total, by_reason[fact.reason]):
            _add(counts, fact, start, end, three_days_end)
        closed_now = fact.closed_at is not None and start <= fact.closed_at < end
        if closed_now and fact.profile in lines and fact.met_on_time is not None:
            on_time, closed = china[lines[fact.profile]]
            china[lines[fact.profile]] = (on_time + fact.met_on_time, closed + 1)
    redress: dict[str, int] = defaultdict(int)
    for currency, amount, paid_at in payouts:
        if start <= paid_at < end:
            redress[currency] += amount
    received = [e for e in escalations if period.first_day <= e.received_on <= period.last_day]
    bodies = Counter(e.body for e in received)
    outcomes = Counter((e.body, e.outcome_by(period.last_day)) for e in received)
    return ComplaintsReturn(
        period, total, dict(by_reason), dict(redress), china, dict(bodies), dict(outcomes)
    )


def _add(counts: Counts, fact: ComplaintFact, start: datetime, end: datetime, three_days_end) -> None:
    received, closed = fact.received_at, fact.closed_at
    if received < start and (closed is None or closed >= start):
        counts.outstanding_at_start += 1
    if start <= received < end:
        counts.opened += 1
    if closed is not None and start <= closed < end:
        if closed <= three_days_end(received):
            counts.closed_within_3_business_days += 1
        elif closed <= received + EIGHT_WEEKS:
            counts.closed_within_8_weeks += 1
        else:
            counts.closed_after_8_weeks += 1
        counts.outcomes[fact.outcome] += 1
    if received < end and (closed is None or closed >= end):
        counts.outstanding_at_end += 1


def three_business_days(timezone: str):
    """When the third business day after a receipt ends, on the tenant's default
    calendar (its hours, holidays and moved working days), as DISP 1.5 counts."""
    version = versions.current(ConfigKind.CALENDAR)
    spec = versions.calendar_spec(version) if version else None

    zone = ZoneInfo(timezone)

    @functools.cache
    def end_for_day(day: date) -> datetime:
        start = datetime.combine(day, time(12), zone)  # any instant of the day: days count whole
        return day_deadline(start, 3, Unit.BUSINESS_DAYS, timezone=timezone, spec=spec).due_at

    def end_of_third(received_at: datetime) -> datetime:
        return end_for_day(received_at.astimezone(zone).date())

    return end_of_third


# --- from the tables ----------------------------------------------------------------------------


def ticket_conditions(filters) -> list:
    """The report's filters (``crm.reports.sla.Filters``) as conditions on tickets."""
    if filters is None:
        return []
    pairs = (
        (Ticket.kind, filters.kind),
        (Ticket.reason, filters.reason),
        (Ticket.channel, filters.channel),
        (Ticket.priority, filters.priority),
        (Ticket.assignee_id, filters.assignee),
    )
    return [column == value for column, value in pairs if value]


def facts_from_tables(period: Period, filters=None) -> list[ComplaintFact]:
    """The complaints received before the period ends and not closed before it starts."""
    receipt = or_(
        Ticket.received_at.is_(None) & (Ticket.created_at < period.end), Ticket.received_at < period.end
    )
    still_there = or_(Ticket.status.not_in(CLOSED), Ticket.resolved_at >= period.start)
    # On the session's connection, without the ORM's per-row work (a quarter of a big
    # tenant is tens of thousands of rows): the tenant's filter is therefore written here.
    conditions = (
        Ticket.tenant_id == current_tenant_id(),
        Ticket.kind.in_(COMPLAINT_KINDS),
        Ticket.merged_into_id.is_(None),
        receipt,
        still_there,
        *ticket_conditions(filters),
    )
    columns = (
        Ticket.id,
        Ticket.reason,
        Ticket.received_at,
        Ticket.created_at,
        Ticket.status,
        Ticket.resolved_at,
    )
    tickets = db.session.connection().execute(select(*columns).where(*conditions)).all()
    # The decisions and clocks of the same tickets, by a subquery rather than a list of
    # thousands of ids.
    ids = select(Ticket.id).where(*conditions)
    outcomes = _outcomes(ids)
    regulatory = _regulatory_finals(ids)
    return [
        ComplaintFact(
            ticket_id=row.id,
            reason=row.reason,
            received_at=row.received_at or row.created_at,
            closed_at=row.resolved_at if row.status in CLOSED else None,
            outcome=outcomes.get(row.id),
            profile=regulatory.get(row.id, (None, None))[0],
            met_on_time=regulatory.get(row.id, (None, None))[1],
        )
        for row in tickets
    ]


def _outcomes(ids) -> dict[int, str]:
    """The outcome of each ticket's decision in force (its latest approved one)."""
    found: dict[int, tuple[int, str]] = {}
    rows = db.session.connection().execute(
        select(RefundDecision.ticket_id, RefundDecision.id, RefundDecision.outcome).where(
            RefundDecision.tenant_id == current_tenant_id(),
            RefundDecision.ticket_id.in_(ids),
            RefundDecision.status == DecisionStatus.APPROVED,
        )
    )
    for ticket_id, decision_id, outcome in rows:
        if ticket_id not in found or decision_id > found[ticket_id][0]:
            found[ticket_id] = (decision_id, outcome)
    return {ticket_id: outcome for ticket_id, (_id, outcome) in found.items()}


def _regulatory_finals(ids) -> dict[int, tuple[str, bool | None]]:
    """Each ticket's regulatory final-answer clock: its profile, and whether it was met
    on time (None while it runs)."""
    rows = db.session.connection().execute(
        select(Clock.subject_id, Clock.rule, Clock.state, Clock.breached_at).where(
            Clock.tenant_id == current_tenant_id(),
            Clock.subject_type == "ticket",
            Clock.subject_id.in_(ids),
            Clock.metric == Metric.REGULATORY_FINAL,
        )
    )
    return {ticket_id: (rule, on_time(state, breached_at)) for ticket_id, rule, state, breached_at in rows}


def on_time(state: str, breached_at: datetime | None) -> bool | None:
    """A deadline's outcome: met on time, missed (True/False), or not known yet."""
    if state == ClockState.MET:
        return breached_at is None
    return False if breached_at is not None else None


def payouts_in(period: Period, filters=None) -> list[tuple[str, int, datetime]]:
    rows = db.session.execute(
        select(RefundDecision.currency, Payout.amount_minor, Payout.paid_at)
        .join(RefundDecision, RefundDecision.id == Payout.decision_id)
        .join(Ticket, Ticket.id == Payout.ticket_id)
        .where(Payout.paid_at >= period.start, Payout.paid_at < period.end, *ticket_conditions(filters))
    )
    return [tuple(row) for row in rows]


def escalations_in(period: Period, filters=None) -> list[EscalationFact]:
    """The escalations received in the period, with what their bodies concluded."""
    rows = db.session.execute(
        select(Escalation.body, Escalation.received_on, Escalation.outcome, Escalation.outcome_on)
        .join(Ticket, Ticket.id == Escalation.ticket_id)
        .where(
            Escalation.received_on >= period.first_day,
            Escalation.received_on <= period.last_day,
            *ticket_conditions(filters),
        )
    )
    return [EscalationFact(*row) for row in rows]
