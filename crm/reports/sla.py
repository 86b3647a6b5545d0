"""SLA attainment: for each metric, the clocks that became due in the period, how many
were met on time, met late, or breached and not met, the attainment, and the median and
90th-percentile time to meet in business and calendar time; overall, or by assignee,
reason or week.

The arithmetic runs on ``ClockFact``s, which come from the clock rows here and from the
audit trail alone in ``crm.reports.trail``: the same code counts both, so ``reports
verify`` compares like with like.
"""

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, case, func, literal, or_, select

from crm.extensions import db
from crm.leads.models import Lead
from crm.reports.periods import Period
from crm.sla import versions
from crm.sla.businesstime import timeline_for
from crm.sla.models import Clock, ClockState, Metric, Unit
from crm.tickets.models import Ticket
from tenants import current_tenant_id

GROUPS = ("metric", "assignee", "reason", "week")
# The order metrics are listed in.
METRICS = (
    Metric.FIRST_RESPONSE,
    Metric.NEXT_RESPONSE,
    Metric.RESOLUTION,
    Metric.REGULATORY_RESPONSE,
    Metric.REGULATORY_FINAL,
    Metric.REGULATORY_FINAL_LATEST,
    Metric.PAYOUT,
    Metric.ESCALATION,
    Metric.FIRST_CONTACT,
)


@dataclass(frozen=True, slots=True)
class ClockFact:
    """What the report needs of one clock."""

    clock_id: int
    metric: str
    state: str
    unit: str
    started_at: datetime
    due_at: datetime
    met_at: datetime | None
    breached_at: datetime | None
    paused_seconds: int
    calendar_version_id: int | None
    assignee_id: int | None = None
    reason: str | None = None


@dataclass
class Row:
    """One line of the report: a metric, within a group (an assignee, a reason, a week)."""

    metric: str
    group: object = None
    due: int = 0
    met_on_time: int = 0
    met_late: int = 0
    breached_open: int = 0
    not_yet_due: int = 0
    business_seconds: list[int] = field(default_factory=list)
    calendar_seconds: list[int] = field(default_factory=list)
    # The medians and 90th percentiles when the database computed them (kind -> value).
    medians: dict[str, int | None] | None = None
    p90s: dict[str, int | None] | None = None

    @property
    def decided(self) -> int:
        """Clocks whose outcome is known: met, or past due without being met."""
        return self.met_on_time + self.met_late + self.breached_open

    @property
    def attainment(self) -> float | None:
        """Met on time, as a share of the clocks whose outcome is known (percent)."""
        return 100 * self.met_on_time / self.decided if self.decided else None

    def median(self, kind: str) -> int | None:
        if self.medians is not None:
            return self.medians[kind]
        values = getattr(self, f"{kind}_seconds")
        return int(statistics.median(values)) if values else None

    def p90(self, kind: str) -> int | None:
        if self.p90s is not None:
            return self.p90s[kind]
        values = sorted(getattr(self, f"{kind}_seconds"))
        if not values:
            return None
        # Nearest rank: the smallest value with at least 90% of them at or below it.
        return values[max(0, -(-9 * len(values) // 10) - 1)]

    def totals(self) -> dict:
        """The counts that ``reports verify`` compares."""
        return {
            "due": self.due,
            "met_on_time": self.met_on_time,
            "met_late": self.met_late,
            "breached_open": self.breached_open,
            "not_yet_due": self.not_yet_due,
        }


def _business_seconds(fact: ClockFact, met_at: datetime, specs: dict) -> int | None:
    if fact.unit != Unit.BUSINESS_MINUTES or fact.calendar_version_id is None:
        return None
    if fact.calendar_version_id not in specs:
        version = versions.by_id(fact.calendar_version_id)
        specs[fact.calendar_version_id] = versions.calendar_spec(version) if version else None
    spec = specs[fact.calendar_version_id]
    if spec is None:
        return None
    return max(0, timeline_for(spec).seconds_between(fact.started_at, met_at) - fact.paused_seconds)


def count(
    facts: Iterable[ClockFact], period: Period, *, now: datetime, group_by: str = "metric"
) -> list[Row]:
    """The report's rows, metrics in their usual order and groups sorted."""
    rows: dict[tuple, Row] = {}
    specs: dict = {}
    for fact in facts:
        if not (period.start <= fact.due_at < period.end):
            continue
        group = {
            "metric": None,
            "assignee": fact.assignee_id,
            "reason": fact.reason,
            "week": period.week_of(fact.due_at),
        }[group_by]
        row = rows.setdefault((fact.metric, group), Row(fact.metric, group))
        row.due += 1
        if fact.met_at is not None and fact.state == ClockState.MET:
            if fact.breached_at is None:
                row.met_on_time += 1
            else:
                row.met_late += 1
            row.calendar_seconds.append(int((fact.met_at - fact.started_at).total_seconds()))
            business = _business_seconds(fact, fact.met_at, specs)
            if business is not None:
                row.business_seconds.append(business)
        elif fact.breached_at is not None or fact.due_at <= now:
            row.breached_open += 1
        else:
            row.not_yet_due += 1
    order = {metric: position for position, metric in enumerate(METRICS)}
    return sorted(rows.values(), key=lambda r: (order.get(r.metric, 99), _sortable(r.group)))


def _sortable(group) -> tuple:
    return (group is None, str(group) if group is not None else "")


# --- from the clock rows ---------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    kind: str | None = None
    reason: str | None = None
    channel: str | None = None
    priority: str | None = None
    assignee: int | None = None

    @property
    def on_tickets(self) -> bool:
        return any((self.kind, self.reason, self.channel, self.priority, self.assignee))


def _due_in(period: Period, filters: Filters, *columns):
    """The report's clocks, with ``columns``: due in the period, alerting (marker clocks
    never alert), not stopped (the request went away), on tickets that pass ``filters``."""
    ticket_join = and_(Clock.subject_type == "ticket", Ticket.id == Clock.subject_id)
    lead_join = and_(Clock.subject_type == "lead", Lead.id == Clock.subject_id)
    query = (
        select(*columns)
        .select_from(Clock)
        .outerjoin(Ticket, ticket_join)
        .outerjoin(Lead, lead_join)
        .where(
            Clock.tenant_id == current_tenant_id(),
            Clock.due_at >= period.start,
            Clock.due_at < period.end,
            Clock.alerts.is_(True),
            Clock.state != ClockState.STOPPED,
        )
    )
    for column, value in (
        (Ticket.kind, filters.kind),
        (Ticket.reason, filters.reason),
        (Ticket.channel, filters.channel),
        (Ticket.priority, filters.priority),
        (Ticket.assignee_id, filters.assignee),
    ):
        if value:
            query = query.where(column == value)
    return query


def rows_in_database(
    period: Period, filters: Filters, *, now: datetime, group_by: str = "metric"
) -> list[Row] | None:
    """The same rows as ``count`` over ``facts_from_clocks``, counted by PostgreSQL: a
    quarter is tens of thousands of clocks, and moving them out to count them took most
    of a second. None where it cannot (SQLite has no percentiles; clocks met before their
    business time was kept, until ``sla backfill-met-times``): count the facts then."""
    if db.session.get_bind().dialect.name != "postgresql":
        return None
    met = and_(Clock.state == ClockState.MET, Clock.met_at.is_not(None))
    unkept = _due_in(period, filters, Clock.id).where(
        met,
        Clock.unit == Unit.BUSINESS_MINUTES,
        Clock.calendar_version_id.is_not(None),
        Clock.met_business_seconds.is_(None),
    )
    if db.session.connection().execute(select(unkept.exists())).scalar():
        return None
    group = {
        "metric": literal(None),
        "assignee": case((Clock.subject_type == "ticket", Ticket.assignee_id), else_=Lead.assignee_id),
        "reason": Ticket.reason,
        "week": func.date_trunc("week", func.timezone(period.timezone, Clock.due_at)),
    }[group_by]
    calendar = func.floor(func.extract("epoch", Clock.met_at - Clock.started_at))
    business = Clock.met_business_seconds
    late = Clock.breached_at.is_not(None)
    open_breach = and_(~met, or_(late, Clock.due_at <= now))

    def percentile(function, fraction, value):
        return function(fraction).within_group(value).filter(met)

    query = _due_in(
        period,
        filters,
        Clock.metric,
        group.label("grp"),
        func.count().label("due"),
        func.count().filter(and_(met, ~late)).label("met_on_time"),
        func.count().filter(and_(met, late)).label("met_late"),
        func.count().filter(open_breach).label("breached_open"),
        func.count().filter(and_(~met, ~late, Clock.due_at > now)).label("not_yet_due"),
        percentile(func.percentile_cont, 0.5, calendar).label("median_calendar"),
        percentile(func.percentile_disc, 0.9, calendar).label("p90_calendar"),
        percentile(func.percentile_cont, 0.5, business).label("median_business"),
        percentile(func.percentile_disc, 0.9, business).label("p90_business"),
    ).group_by(Clock.metric, *([] if group_by == "metric" else [group]))
    rows = [
        Row(
            metric=row.metric,
            group=row.grp.date() if group_by == "week" and row.grp is not None else row.grp,
            due=row.due,
            met_on_time=row.met_on_time,
            met_late=row.met_late,
            breached_open=row.breached_open,
            not_yet_due=row.not_yet_due,
            medians={"calendar": _whole(row.median_calendar), "business": _whole(row.median_business)},
            p90s={"calendar": _whole(row.p90_calendar), "business": _whole(row.p90_business)},
        )
        for row in db.session.connection().execute(query)
    ]
    order = {metric: position for position, metric in enumerate(METRICS)}
    return sorted(rows, key=lambda r: (order.get(r.metric, 99), _sortable(r.group)))


def _whole(seconds) -> int | None:
    """As ``int(statistics.median(...))`` makes it: whole seconds, rounded down."""
    return None if seconds is None else int(seconds)


def facts_from_clocks(period: Period, filters: Filters = Filters()) -> list[ClockFact]:
    """The clocks due in the period with what the groups need: a ticket's assignee and
    reason, a lead's owner. Stopped clocks are left out: the request went away. Marker
    clocks, which never alert, are left out too."""
    # Columns, not Clock objects: a quarter is tens of thousands of clocks.
    query = _due_in(
        period,
        filters,
        Clock.id,
        Clock.subject_type,
        Clock.metric,
        Clock.state,
        Clock.unit,
        Clock.started_at,
        Clock.due_at,
        Clock.met_at,
        Clock.breached_at,
        Clock.paused_seconds,
        Clock.calendar_version_id,
        Ticket.assignee_id,
        Ticket.reason,
        Lead.assignee_id.label("lead_assignee_id"),
    )
    return [
        ClockFact(
            clock_id=row.id,
            metric=row.metric,
            state=row.state,
            unit=row.unit,
            started_at=row.started_at,
            due_at=row.due_at,
            met_at=row.met_at,
            breached_at=row.breached_at,
            paused_seconds=row.paused_seconds,
            calendar_version_id=row.calendar_version_id,
            assignee_id=row.assignee_id if row.subject_type == "ticket" else row.lead_assignee_id,
            reason=row.reason,
        )
        # On the session's connection: tens of thousands of plain rows, without the ORM's
        # per-row work; the tenant's filter is therefore written here.
        for row in db.session.connection().execute(query)
    ]


def attainment_rows(
    period: Period, filters: Filters | None = None, *, now: datetime, group_by: str = "metric"
) -> list[Row]:
    """The report's rows: counted by the database where it can, else from the facts
    (the same numbers either way; the tests run both)."""
    filters = filters or Filters()
    counted = rows_in_database(period, filters, now=now, group_by=group_by)
    if counted is not None:
        return counted
    return count(facts_from_clocks(period, filters), period, now=now, group_by=group_by)
