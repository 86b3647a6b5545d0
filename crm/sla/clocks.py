"""Clocks: starting them, pausing, resuming, meeting and stopping them, and keeping each
subject's nearest deadline where the queue can sort by it.

A clock is general: a ticket has first-response, next-response, resolution and
regulatory clocks, and a lead a first-contact clock, all with the same rules. Each
operation changes the clock rows and records one audit event naming the clocks and
their new times; the caller commits.
"""

from collections.abc import Iterable
from datetime import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from crm.audit.chain import format_instant
from crm.audit.service import Actor, record
from crm.columns import utcnow
from crm.errors import DomainError
from crm.extensions import db, insert_rows
from crm.sla import breaches, official, rules, versions
from crm.sla.businesstime import CalendarSpec, timeline_for
from crm.sla.deadlines import DayDeadline, day_deadline
from crm.sla.models import REGULATORY_METRICS, Clock, ClockState, ConfigKind, ConfigVersion, Metric, Unit
from crm.tickets.models import Status, Ticket

UNFINISHED = (ClockState.RUNNING, ClockState.PAUSED)
# The clocks an SLA policy's rules set (the regulatory and payout ones follow other rules).
SLA_METRICS = (Metric.FIRST_RESPONSE, Metric.NEXT_RESPONSE, Metric.RESOLUTION)
REGULATORY_WARN_PERCENT = 80


# --- computing a clock's times ----------------------------------------------------------


def day_deadline_of(clock: Clock, spec: CalendarSpec | None) -> DayDeadline:
    """A clock counted in days: when it ends, and why. A regulatory clock counts as its
    profile says (the jurisdiction's time zone and official working days, moved off a
    holiday where the law says so); others count on their calendar's days (UTC days
    without one)."""
    profile = versions.profile_of(clock) if clock.metric in REGULATORY_METRICS else None
    country = profile.country if profile else None
    return day_deadline(
        clock.started_at,
        clock.target,
        clock.unit,
        timezone=(profile and profile.timezone) or (spec.timezone if spec else "UTC"),
        country=country,
        spec=spec,
        roll_forward=bool(profile and profile.roll_forward),
    )


def _schedule(clock: Clock, spec: CalendarSpec | None) -> None:
    """Set ``due_at``, ``warn_at`` and ``check_at`` from the clock's target and pauses
    (days are the calendar's local days; UTC days for a clock without one). A breached
    clock keeps the due time it was breached against."""
    if clock.state != ClockState.RUNNING:
        clock.check_at = None
        return
    if clock.breached_at is None:
        if clock.unit == Unit.BUSINESS_MINUTES:
            timeline = timeline_for(spec)
            seconds = clock.target * 60
            clock.due_at = timeline.add_seconds(clock.started_at, seconds + clock.paused_seconds)
            if clock.warn_percent:
                warn_seconds = seconds * clock.warn_percent // 100
                clock.warn_at = timeline.add_seconds(clock.started_at, warn_seconds + clock.paused_seconds)
        else:
            clock.due_at = day_deadline_of(clock, spec).due_at
            if clock.warn_percent:
                clock.warn_at = (
                    clock.started_at + (clock.due_at - clock.started_at) * clock.warn_percent / 100
                )
    if not clock.alerts:
        clock.check_at = None
    elif clock.warned_at is None and clock.warn_at is not None and clock.breached_at is None:
        clock.check_at = clock.warn_at
    elif clock.breached_at is None:
        clock.check_at = clock.due_at
    else:
        clock.check_at = None


def _calendar_of(clock: Clock) -> CalendarSpec | None:
    version = versions.by_id(clock.calendar_version_id)
    return versions.calendar_spec(version) if version else None


def _business_seconds(clock: Clock, start: datetime, end: datetime) -> int:
    spec = _calendar_of(clock)
    if clock.unit != Unit.BUSINESS_MINUTES or spec is None:
        return int((end - start).total_seconds())
    return timeline_for(spec).seconds_between(start, end)


def met_business_seconds(clock: Clock) -> int | None:
    """The business time a met clock ran, pauses left out; None for a clock counted in
    calendar time or on no calendar (the SLA report's time to meet)."""
    spec = _calendar_of(clock)
    if clock.unit != Unit.BUSINESS_MINUTES or spec is None or clock.met_at is None:
        return None
    return max(0, timeline_for(spec).seconds_between(clock.started_at, clock.met_at) - clock.paused_seconds)


def backfill_met_business_seconds(batch: int = 5_000) -> int:
    """Keep the business time to meet of the tenant's met clocks that lack it (met before
    it was kept); the caller commits. Returns how many were filled in."""
    filled = 0
    after = 0
    while True:
        found = list(
            db.session.scalars(
                select(Clock)
                .where(
                    Clock.id > after,
                    Clock.state == ClockState.MET,
                    Clock.unit == Unit.BUSINESS_MINUTES,
                    Clock.calendar_version_id.is_not(None),
                    Clock.met_business_seconds.is_(None),
                )
                .order_by(Clock.id)
                .limit(batch)
            )
        )
        if not found:
            return filled
        for clock in found:
            clock.met_business_seconds = met_business_seconds(clock)
        filled += len(found)
        after = found[-1].id
        db.session.flush()


def summary(clock: Clock) -> dict:
    """What an audit event says of a clock: enough to recompute its figures."""
    return {
        "clock_id": clock.id,
        "metric": clock.metric,
        "state": clock.state,
        "unit": clock.unit,
        "target": clock.target,
        "config_version_id": clock.config_version_id,
        "rule": clock.rule,
        "calendar_version_id": clock.calendar_version_id,
        "started_at": format_instant(clock.started_at),
        "due_at": format_instant(clock.due_at) if clock.due_at else None,
        "paused_seconds": clock.paused_seconds,
        # When it ended, for a report recomputed from the trail (events from issue 14 on).
        "met_at": format_instant(clock.met_at) if clock.met_at else None,
        **_official_calendar(clock),
    }


def _official_calendar(clock: Clock) -> dict:
    """For a clock counted on a country's official working days: which, and from what."""
    if clock.metric not in REGULATORY_METRICS:
        return {}
    profile = versions.profile_of(clock)
    if profile is None or profile.country is None:
        return {}
    return {
        "official_calendar": f"{profile.country} ({official.package_of(profile.country)})",
        "timezone": profile.timezone,
    }


# --- starting ---------------------------------------------------------------------------


def start_clock(
    subject_type: str,
    subject_id: int,
    metric: Metric,
    *,
    unit: Unit,
    target: int,
    started_at: datetime,
    calendar: ConfigVersion | None,
    config: ConfigVersion | None = None,
    rule: str | None = None,
    warn_percent: int | None = None,
    alerts: bool = True,
) -> Clock:
    """A running clock on any subject (the caller records the event)."""
    clock = _new_clock(
        subject_type,
        subject_id,
        metric,
        unit=unit,
        target=target,
        started_at=started_at,
        calendar=calendar,
        config=config,
        rule=rule,
        warn_percent=warn_percent,
        alerts=alerts,
    )
    db.session.add(clock)
    return clock


def _new_clock(
    subject_type: str,
    subject_id: int | None,
    metric: Metric,
    *,
    unit: Unit,
    target: int,
    started_at: datetime,
    calendar: ConfigVersion | None,
    config: ConfigVersion | None,
    rule: str | None,
    warn_percent: int | None,
    alerts: bool,
) -> Clock:
    clock = Clock(
        subject_type=subject_type,
        subject_id=subject_id,
        metric=metric,
        state=ClockState.RUNNING,
        config_version_id=config.id if config else None,
        rule=rule,
        calendar_version_id=calendar.id if calendar else None,
        unit=unit,
        target=target,
        warn_percent=warn_percent,
        alerts=alerts,
        started_at=started_at,
        paused_seconds=0,
        pauses=[],
    )
    spec = versions.calendar_spec(calendar) if calendar else None
    _schedule(clock, spec)
    return clock


def started(ticket: Ticket, new: list[Clock], *, actor: Actor) -> None:
    """Clocks another domain started on a ticket (payout, an outside body's deadline):
    the ticket's nearest deadline follows, and the start is recorded."""
    db.session.flush()
    refresh_ticket(ticket, clocks_of("ticket", ticket.id))
    record("clock.started", "ticket", ticket.id, actor=actor, data={"clocks": [summary(c) for c in new]})


def meet(
    subject_type: str, subject_id: int, metric: Metric, *, actor: Actor, at: datetime | None = None
) -> list[Clock]:
    """Meet the subject's unfinished clocks of ``metric`` (a lead's first contact)."""
    clocks = clocks_of(subject_type, subject_id)
    met = _meet_unfinished(clocks, (metric,), at or utcnow(), actor)
    if met:
        record("clock.met", subject_type, subject_id, actor=actor, data={"clocks": [summary(c) for c in met]})
        if subject_type == "ticket":
            refresh_ticket(db.session.get(Ticket, subject_id), clocks)
    return met


def stop(
    subject_type: str, subject_id: int, metric: Metric, *, actor: Actor, at: datetime | None = None
) -> list[Clock]:
    """Stop the subject's unfinished clocks of ``metric``: what they waited for will not
    come (a lead marked unreachable, or lost). One already past due is breached first."""
    at = at or utcnow()
    stopped = [c for c in clocks_of(subject_type, subject_id) if c.metric == metric and c.state in UNFINISHED]
    breaches.record_overdue({"stopped": stopped}, at)
    for clock in stopped:
        _finish(clock, at, ClockState.STOPPED)
    if stopped:
        record(
            "clock.stopped",
            subject_type,
            subject_id,
            actor=actor,
            data={"clocks": [summary(c) for c in stopped]},
        )
    return stopped


def _ticket_rule(ticket: Ticket, policy_version: ConfigVersion) -> tuple[int, rules.Rule] | None:
    return versions.policy(policy_version).match(ticket.kind, ticket.priority, ticket.channel)


def plan_ticket_clocks(ticket: Ticket, *, received_at: datetime | None = None) -> list[Clock]:
    """A new ticket's clocks, before the ticket is inserted: first response and
    resolution from the first SLA rule that covers it, and the regulatory deadlines of the
    profile its kind and channel get. The ticket's deadline columns are set from them, so
    its INSERT carries them; ``start_ticket_clocks`` stores them once it has an id.

    ``received_at``: when the complaint truly came in, if before the ticket was logged
    (a letter, a call logged later). The regulatory clocks run from then, as the law
    counts from receipt; the desk's own SLA clocks run from the ticket's creation."""
    versions.prefetch(
        (ConfigKind.SLA_POLICY, rules.DEFAULT_KEY),
        (ConfigKind.DEADLINES, rules.DEFAULT_KEY),
        (ConfigKind.CALENDAR, rules.DEFAULT_CALENDAR),
    )
    planned = []
    policy_version = versions.current(ConfigKind.SLA_POLICY)
    matched = _ticket_rule(ticket, policy_version)
    if matched:
        position, rule = matched
        calendar = versions.calendar(rule.calendar)
        for metric in (Metric.FIRST_RESPONSE, Metric.RESOLUTION):
            target = rule.target(metric)
            if target:
                planned.append(
                    _new_clock(
                        "ticket",
                        None,
                        metric,
                        unit=Unit.BUSINESS_MINUTES,
                        target=target,
                        started_at=ticket.created_at,
                        calendar=calendar,
                        config=policy_version,
                        rule=str(position),
                        warn_percent=rule.warn_percent,
                        alerts=True,
                    )
                )
    deadlines_version = versions.current(ConfigKind.DEADLINES)
    deadline_rules = versions.deadline_rules(deadlines_version)
    profile = deadline_rules.profile_for(ticket.kind, ticket.channel)
    if profile:
        calendar = versions.calendar(deadline_rules.calendar)
        for deadline in profile.deadlines:
            planned.append(
                _new_clock(
                    "ticket",
                    None,
                    deadline.metric,
                    unit=deadline.unit,
                    target=deadline.days,
                    started_at=received_at or ticket.created_at,
                    calendar=calendar,
                    config=deadlines_version,
                    rule=profile.code,
                    warn_percent=REGULATORY_WARN_PERCENT if deadline.alerts else None,
                    alerts=deadline.alerts,
                )
            )
    first_response = [clock for clock in planned if clock.metric == Metric.FIRST_RESPONSE]
    ticket.respond_by = first_response[0].due_at if first_response else None
    refresh_ticket(ticket, planned)
    return planned


# What a planned clock's INSERT writes: every column but its id and tenant (stamped by
# insert_rows). ``_new_clock`` sets each column that has a default.
_CLOCK_COLUMNS = tuple(
    column.key for column in Clock.__table__.columns if column.key not in ("id", "tenant_id")
)


def start_ticket_clocks(ticket: Ticket, planned: list[Clock], *, actor: Actor) -> None:
    """Store the planned clocks of a ticket just inserted, and record their start. One
    Core INSERT: the clocks stay objects outside the session, for the caller to read
    (a receipt states their deadlines); nothing changes them in the request that makes
    them. Every ticket received writes them."""
    if not planned:
        return
    for clock in planned:
        clock.subject_id = ticket.id
    rows = [{key: getattr(clock, key) for key in _CLOCK_COLUMNS} for clock in planned]
    for clock, (clock_id,) in zip(planned, insert_rows(Clock, rows, Clock.id), strict=True):
        clock.id = clock_id
    record("clock.started", "ticket", ticket.id, actor=actor, data={"clocks": [summary(c) for c in planned]})


# --- what happens to a ticket's clocks ---------------------------------------------------


def clocks_of(subject_type: str, subject_id: int) -> list[Clock]:
    return list(
        db.session.scalars(
            select(Clock)
            .where(Clock.subject_type == subject_type, Clock.subject_id == subject_id)
            .order_by(Clock.id)
        )
    )


def reschedule(clock: Clock) -> None:
    spec = _calendar_of(clock)
    _schedule(clock, spec)


def _pause(clock: Clock, at: datetime, why: str) -> None:
    clock.state = ClockState.PAUSED
    clock.paused_at = at
    clock.pauses = [*clock.pauses, {"from": format_instant(at), "to": None, "seconds": None, "why": why}]
    if clock.breached_at is None:
        clock.due_at = clock.warn_at = None
    clock.check_at = None


def _resume(clock: Clock, at: datetime) -> None:
    """Back to running; the business time since the pause (or since it was met, for a
    reopened ticket) does not count against the target."""
    since = clock.paused_at or clock.met_at
    seconds = max(0, _business_seconds(clock, since, at))
    if clock.state == ClockState.MET:
        clock.pauses = [
            *clock.pauses,
            {"from": format_instant(since), "to": format_instant(at), "seconds": seconds, "why": "resolved"},
        ]
    else:
        last = dict(clock.pauses[-1], to=format_instant(at), seconds=seconds)
        clock.pauses = [*clock.pauses[:-1], last]
    clock.paused_seconds += seconds
    clock.paused_at = clock.met_at = clock.met_business_seconds = None
    clock.state = ClockState.RUNNING
    reschedule(clock)


def _finish(clock: Clock, at: datetime, state: ClockState) -> None:
    if clock.state == ClockState.PAUSED:
        seconds = max(0, _business_seconds(clock, clock.paused_at, at))
        clock.pauses = [*clock.pauses[:-1], dict(clock.pauses[-1], to=format_instant(at), seconds=seconds)]
        clock.paused_seconds += seconds
        clock.paused_at = None
    clock.state = state
    if state == ClockState.MET:
        clock.met_at = at
        clock.met_business_seconds = met_business_seconds(clock)
    else:
        clock.stopped_at = at
    clock.check_at = None


def refresh_ticket(ticket: Ticket, clocks: Iterable[Clock]) -> None:
    """The ticket's nearest running deadline (and its warning time), for the queue."""
    running = [c for c in clocks if c.state == ClockState.RUNNING and c.alerts and c.due_at]
    nearest = min(running, key=lambda clock: clock.due_at, default=None)
    ticket.due_at = nearest.due_at if nearest else None
    ticket.warn_at = (nearest.warn_at or nearest.due_at) if nearest else None


def _apply(ticket: Ticket, changes: dict[str, list[Clock]], clocks: list[Clock], actor: Actor) -> None:
    for action, changed in changes.items():
        if changed:
            record(
                f"clock.{action}",
                "ticket",
                ticket.id,
                actor=actor,
                data={"clocks": [summary(clock) for clock in changed]},
            )
    refresh_ticket(ticket, clocks)


def _meet_unfinished(
    clocks: list[Clock], metrics: tuple[Metric, ...], at: datetime, actor: Actor
) -> list[Clock]:
    """Meet those of ``clocks`` of ``metrics`` still running or paused; the ones met.
    One met after its due time is breached first, if nobody has recorded that yet."""
    met = [c for c in clocks if c.metric in metrics and c.state in UNFINISHED]
    breaches.record_overdue({"met": met}, at)
    for clock in met:
        _finish(clock, at, ClockState.MET)
    return met


def _meet_waiting(ticket: Ticket, metrics: tuple[Metric, ...], actor: Actor, at: datetime) -> None:
    clocks = clocks_of("ticket", ticket.id)
    _apply(ticket, {"met": _meet_unfinished(clocks, metrics, at, actor)}, clocks, actor)


def on_public_reply(ticket: Ticket, *, actor: Actor, at: datetime | None = None) -> None:
    """The first public reply meets first response (and a regulator's "respond" deadline);
    any public reply meets the next-response clock a customer's message started."""
    answered = (Metric.FIRST_RESPONSE, Metric.NEXT_RESPONSE, Metric.REGULATORY_RESPONSE)
    _meet_waiting(ticket, answered, actor, at or utcnow())


def on_answered_call(ticket: Ticket, *, actor: Actor, at: datetime | None = None) -> None:
    """A call in which staff spoke with the customer answers them: it meets first and
    next response. A regulator's response deadline asks for an answer on the record, so
    it waits for a public reply."""
    _meet_waiting(ticket, (Metric.FIRST_RESPONSE, Metric.NEXT_RESPONSE), actor, at or utcnow())


def on_priority_change(ticket: Ticket, *, actor: Actor) -> None:
    """Staff changed the ticket's priority: each running SLA clock takes the target of
    the rule that now covers the ticket, in the policy version the clock pinned, when
    that target is shorter. A reclassification never lengthens a deadline already
    running (the customer may have been told it), and a clock keeps its start, its
    pauses and its calendar. A breached clock stays as it was breached."""
    clocks = clocks_of("ticket", ticket.id)
    retargeted = []
    for clock in clocks:
        if (
            clock.metric not in SLA_METRICS
            or clock.state not in UNFINISHED
            or clock.breached_at is not None
            or clock.config_version_id is None
        ):
            continue
        policy = versions.policy(versions.by_id(clock.config_version_id))
        matched = policy.match(ticket.kind, ticket.priority, ticket.channel)
        if matched is None:
            continue
        position, rule = matched
        target = rule.target(Metric(clock.metric))
        if target is None or target >= clock.target:
            continue
        clock.target, clock.rule, clock.warn_percent = target, str(position), rule.warn_percent
        reschedule(clock)
        retargeted.append(clock)
    _apply(ticket, {"retargeted": retargeted}, clocks, actor)
    # A shorter target may put the due time in the past: that is a breach now, at it.
    breaches.record_overdue({"retargeted": retargeted}, utcnow())


def move_receipt(ticket: Ticket, received_at: datetime, *, actor: Actor) -> list[Clock]:
    """Staff gave the time the complaint truly came in, before it was logged: the
    ticket's running regulatory clocks start from then, as the law counts from receipt
    (the desk's own SLA clocks keep their start). A due time that is then already past is
    breached at once, at that due time; a clock already breached or finished stays as it
    is. The clocks moved (recorded as ``clock.restarted``)."""
    if received_at.tzinfo is None or received_at > ticket.created_at:
        raise DomainError(_l("The time of receipt cannot be after the ticket was logged."), "received_at")
    clocks = clocks_of("ticket", ticket.id)
    moved = [
        clock
        for clock in clocks
        if clock.metric in REGULATORY_METRICS and clock.state in UNFINISHED and clock.breached_at is None
    ]
    for clock in moved:
        clock.started_at = received_at
        reschedule(clock)
    _apply(ticket, {"restarted": moved}, clocks, actor)
    breaches.record_overdue({"restarted": moved}, utcnow())
    return moved


def on_customer_message(ticket: Ticket, *, actor: Actor, at: datetime | None = None) -> None:
    """A customer's message starts a next-response clock, unless one (or the first
    response) is already waiting for our answer; the rule the ticket started under sets it."""
    at = at or utcnow()
    clocks = clocks_of("ticket", ticket.id)
    waiting = (Metric.FIRST_RESPONSE, Metric.NEXT_RESPONSE)
    if any(c.metric in waiting and c.state in UNFINISHED for c in clocks):
        return
    policy_clock = next((c for c in clocks if c.metric in SLA_METRICS and c.config_version_id), None)
    if policy_clock is None:
        return
    policy_version = versions.by_id(policy_clock.config_version_id)
    rule = versions.policy(policy_version).rules[int(policy_clock.rule) - 1]
    if not rule.next_response:
        return
    clock = start_clock(
        "ticket",
        ticket.id,
        Metric.NEXT_RESPONSE,
        unit=Unit.BUSINESS_MINUTES,
        target=rule.next_response,
        started_at=at,
        calendar=versions.by_id(policy_clock.calendar_version_id),
        config=policy_version,
        rule=policy_clock.rule,
        warn_percent=rule.warn_percent,
    )
    db.session.flush()
    _apply(ticket, {"started": [clock]}, [*clocks, clock], actor)


def on_status_change(
    ticket: Ticket, old: Status, new: Status, *, actor: Actor, at: datetime | None = None
) -> None:
    at = at or utcnow()
    clocks = clocks_of("ticket", ticket.id)
    changes: dict[str, list[Clock]] = {"paused": [], "resumed": [], "met": [], "stopped": []}
    # A merged duplicate passes through resolved on its way to closed; nobody answered it,
    # its request went into the other ticket, so its clocks stop rather than count as met.
    gone = new in (Status.WITHDRAWN, Status.CLOSED) or (
        new == Status.RESOLVED and ticket.merged_into_id is not None
    )
    for clock in clocks:
        metric, state = clock.metric, clock.state
        if gone:
            if state in UNFINISHED:
                changes["stopped"].append(clock)
        elif new == Status.RESOLVED:
            if state not in UNFINISHED or metric == Metric.PAYOUT:
                continue  # money owed is watched until it is paid, resolved or not
            if metric in (Metric.RESOLUTION, Metric.ESCALATION) or metric in REGULATORY_METRICS:
                changes["met"].append(clock)
            else:  # nothing is left to answer once the request is resolved
                changes["stopped"].append(clock)
        elif metric == Metric.RESOLUTION:
            if new == Status.AWAITING_CUSTOMER and state == ClockState.RUNNING:
                changes["paused"].append(clock)
            elif new == Status.OPEN and (
                state == ClockState.PAUSED or (state == ClockState.MET and old == Status.RESOLVED)
            ):
                changes["resumed"].append(clock)
    # Each clock checks its own due time before it changes: one past it is breached now,
    # at its due time, whether or not the sweep has come by. A clock that goes on
    # (paused) gets the rule's escalations too; one that ends here only tells people.
    breaches.record_overdue({name: changes[name] for name in ("paused", "met", "stopped")}, at)
    for clock in changes["paused"]:
        _pause(clock, at, Status.AWAITING_CUSTOMER)
    for clock in changes["resumed"]:
        _resume(clock, at)
    for state, finished in ((ClockState.MET, changes["met"]), (ClockState.STOPPED, changes["stopped"])):
        for clock in finished:
            _finish(clock, at, state)
    _apply(ticket, changes, clocks, actor)
    # A resumed clock's new due time is after the resumption, unless it was paused with no
    # business time left; that too is a breach now.
    breaches.record_overdue({"resumed": changes["resumed"]}, at)
