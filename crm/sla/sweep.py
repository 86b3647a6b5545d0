"""The sweep: every minute, find the clocks whose warning or due time has passed, record
the warning or breach once, run the policy's actions and tell the people concerned.

It reads the partial index on ``clocks.check_at`` (only clocks with something left to
detect are in it), so its cost follows the number due, not the number of tickets. A
tenant's due clocks are handled together, in one transaction and a fixed number of
statements: each kind of fact is claimed by one conditional UPDATE (``... WHERE
breached_at IS NULL RETURNING id``), so of two sweeps running at once, or one repeated,
exactly one records a breach and acts on it.
"""

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from flask import render_template
from flask_babel import force_locale, ngettext
from sqlalchemy import Select, and_, literal, select, tuple_, update

from crm import jobs
from crm.access import Role
from crm.audit.chain import format_instant
from crm.audit.service import Actor, record
from crm.auth.models import User
from crm.columns import utcnow
from crm.extensions import db, insert_new
from crm.notify.service import queue_email
from crm.sla import rules, versions
from crm.sla.labels import EVENT_LABELS, METRIC_LABELS
from crm.sla.models import Clock, ClockState, Metric, Notification
from crm.tickets.links import external_url
from crm.tickets.models import Priority, Ticket
from tenants import Tenant, current_tenant, current_tenant_id, tenant_context

log = logging.getLogger(__name__)
BATCH = 200
SWEEP_JOB_PREFIX = "ledgerdesk-sla-sweep-"
# A breach under a rule with no actions (or a regulatory or lead clock) still tells people.
DEFAULT_BREACH_ACTIONS = (rules.Action.NOTIFY_ASSIGNEE, rules.Action.NOTIFY_MANAGERS)
RAISED = {Priority.LOW: Priority.NORMAL, Priority.NORMAL: Priority.HIGH, Priority.HIGH: Priority.URGENT}
WARNED, BREACHED = "warned", "breached"


@dataclass
class SweepResult:
    warned: int = 0
    breached: int = 0
    actions: int = 0

    def add(self, other: "SweepResult") -> None:
        self.warned += other.warned
        self.breached += other.breached
        self.actions += other.actions


def sweep(now: datetime | None = None) -> SweepResult:
    """Detect every warning and breach due by ``now``, across all tenants, each tenant's
    in its own context and transaction."""
    now = now or utcnow()
    result = SweepResult()
    after = None  # keyset: clocks that fail stay due, and the sweep still gets past them
    while True:
        rows = db.session.execute(due_clocks(now, after), execution_options={"tenant_guard": False}).all()
        db.session.commit()
        if not rows:
            return result
        after = (rows[-1].check_at, rows[-1].id)
        by_tenant: dict[int, list[int]] = defaultdict(list)
        for _check_at, clock_id, tenant_id in rows:
            by_tenant[tenant_id].append(clock_id)
        for tenant_id, clock_ids in by_tenant.items():
            tenant = db.session.get(Tenant, tenant_id)
            if tenant is None or not tenant.is_active:
                continue  # a suspended tenant's clocks wait for it to come back
            with tenant_context(tenant):
                result.add(_sweep_tenant(clock_ids, now))


def due_clocks(now: datetime, after: tuple[datetime, int] | None = None) -> Select:
    """The next batch of clocks, of every tenant, with a warning or breach due by ``now``:
    a range scan of the partial index on ``check_at``."""
    query = select(Clock.check_at, Clock.id, Clock.tenant_id).where(Clock.check_at <= now)
    if after is not None:
        bound = tuple_(literal(after[0], Clock.check_at.type), literal(after[1], Clock.id.type))
        query = query.where(tuple_(Clock.check_at, Clock.id) > bound)
    return query.order_by(Clock.check_at, Clock.id).limit(BATCH)


def _sweep_tenant(clock_ids: list[int], now: datetime) -> SweepResult:
    """The tenant's due clocks in one transaction; should that fail, each clock in its
    own, so that one clock that cannot be handled holds back no other."""
    for batch in (clock_ids, *([clock_id] for clock_id in clock_ids if len(clock_ids) > 1)):
        try:
            result = _sweep_clocks(batch, now)
            db.session.commit()
        except Exception:
            db.session.rollback()
            log.exception("sweep: clocks %s of tenant %s failed", batch, current_tenant_id())
            continue
        if batch is clock_ids:
            return result
    return SweepResult()


def _claim(clock_ids: list[int], now: datetime, event: str) -> set[int]:
    """Record the warning (or breach) of those of ``clock_ids`` that have one due and
    not yet recorded, at its own time; the ids this call recorded."""
    running = and_(Clock.id.in_(clock_ids), Clock.state == ClockState.RUNNING, Clock.alerts.is_(True))
    if event == WARNED:
        statement = (
            update(Clock)
            .where(running, Clock.warned_at.is_(None), Clock.warn_at <= now, Clock.breached_at.is_(None))
            .values(warned_at=Clock.warn_at, check_at=Clock.due_at)
        )
    else:
        statement = (
            update(Clock)
            .where(running, Clock.breached_at.is_(None), Clock.due_at <= now)
            .values(breached_at=Clock.due_at, check_at=None)
        )
    claimed = db.session.execute(
        statement.returning(Clock.id), execution_options={"synchronize_session": False}
    )
    return set(claimed.scalars())


@dataclass
class _Batch:
    """What one tenant's sweep has loaded and decided."""

    clocks: dict[int, Clock]
    tickets: dict[int, Ticket]
    users: dict[int, User] = field(default_factory=dict)
    managers: list[User] | None = None
    # (who, which clock, "warned"/"breached", to whom it was meant: "assignee"/"managers")
    notices: list[tuple[User, Clock, str, str]] = field(default_factory=list)


def _sweep_clocks(clock_ids: list[int], now: datetime) -> SweepResult:
    # Staff actions change a ticket and then its clocks; the sweep takes the tickets'
    # locks first too, so the two never wait for each other in opposite orders.
    ticket_ids = select(Clock.subject_id).where(Clock.id.in_(clock_ids), Clock.subject_type == "ticket")
    db.session.execute(select(Ticket.id).where(Ticket.id.in_(ticket_ids)).with_for_update())
    warned = _claim(clock_ids, now, WARNED)
    breached = _claim(clock_ids, now, BREACHED)
    warned -= breached  # past due as well: the breach says it all
    if not warned and not breached:
        return SweepResult()
    clocks = {
        clock.id: clock
        for clock in db.session.scalars(
            select(Clock).where(Clock.id.in_(warned | breached)).execution_options(populate_existing=True)
        )
    }
    ticket_ids = [clock.subject_id for clock in clocks.values() if clock.subject_type == "ticket"]
    batch = _Batch(
        clocks, {t.id: t for t in db.session.scalars(select(Ticket).where(Ticket.id.in_(ticket_ids)))}
    )
    assignee_ids = {ticket.assignee_id for ticket in batch.tickets.values() if ticket.assignee_id}
    batch.users = {
        user.id: user for user in db.session.scalars(select(User).where(User.id.in_(assignee_ids)))
    }
    result = SweepResult(warned=len(warned), breached=len(breached))
    for clock_id in sorted(warned):
        clock = clocks[clock_id]
        _record(clock, WARNED, now)
        assignee = _assignee(batch, clock)
        to = "assignee" if assignee else "managers"
        batch.notices += [(user, clock, WARNED, to) for user in assignee or _managers(batch)]
    for clock_id in sorted(breached):
        clock = clocks[clock_id]
        _record(clock, BREACHED, now)
        result.actions += _run_breach_actions(batch, clock)
    result.actions += _notify(batch)
    return result


def _record(clock: Clock, event: str, now: datetime) -> None:
    record(
        f"clock.{event}",
        clock.subject_type,
        clock.subject_id,
        actor=Actor.system(),
        data={
            "clock_id": clock.id,
            "metric": clock.metric,
            "at": format_instant(clock.warned_at if event == WARNED else clock.breached_at),
            "detected_at": format_instant(now),
            "due_at": format_instant(clock.due_at),
        },
    )


def _managers(batch: _Batch) -> list[User]:
    if batch.managers is None:
        query = select(User).where(User.active.is_(True), User.role.in_((Role.MANAGER, Role.ADMIN)))
        batch.managers = [user for user in db.session.scalars(query.order_by(User.id)) if user.is_active]
    return batch.managers


def _assignee(batch: _Batch, clock: Clock) -> list[User]:
    ticket = batch.tickets.get(clock.subject_id) if clock.subject_type == "ticket" else None
    user = batch.users.get(ticket.assignee_id) if ticket and ticket.assignee_id else None
    return [user] if user is not None and user.is_active else []


def _rule(clock: Clock) -> rules.Rule | None:
    if clock.metric not in (Metric.FIRST_RESPONSE, Metric.NEXT_RESPONSE, Metric.RESOLUTION):
        return None
    version = versions.by_id(clock.config_version_id)
    return versions.policy(version).rules[int(clock.rule) - 1] if version else None


def _run_breach_actions(batch: _Batch, clock: Clock) -> int:
    """The actions of the rule the clock started under; each change is audited, and the
    people to tell are gathered for ``_notify``."""
    rule = _rule(clock)
    actions = rule.actions if rule and rule.actions else DEFAULT_BREACH_ACTIONS
    ticket = batch.tickets.get(clock.subject_id) if clock.subject_type == "ticket" else None
    done = 0
    for action in actions:
        if action == rules.Action.NOTIFY_ASSIGNEE:
            users = _assignee(batch, clock) or ([] if ticket else _managers(batch))
            batch.notices += [(user, clock, BREACHED, "assignee") for user in users]
        elif action == rules.Action.NOTIFY_MANAGERS:
            batch.notices += [(user, clock, BREACHED, "managers") for user in _managers(batch)]
        elif action == rules.Action.RAISE_PRIORITY and ticket is not None and ticket.priority in RAISED:
            _act(clock, action, {"before": ticket.priority, "after": RAISED[ticket.priority]})
            ticket.priority = RAISED[ticket.priority]
            done += 1
        elif action == rules.Action.REASSIGN and ticket is not None:
            done += _reassign(clock, ticket, rule.reassign_to)
    return done


def _reassign(clock: Clock, ticket: Ticket, target: int | str | None) -> int:
    if target == rules.MANAGERS_QUEUE:
        _act(clock, rules.Action.REASSIGN, {"before": ticket.assignee_id, "after": None, "to": "managers"})
        ticket.assignee_id = None
        ticket.needs_manager = True
        return 1
    user = db.session.get(User, target) if isinstance(target, int) else None
    if user is None or not user.is_active or user.role == Role.AUDITOR:
        log.warning("sweep: cannot reassign ticket %s to user %s", ticket.id, target)
        return 0
    _act(clock, rules.Action.REASSIGN, {"before": ticket.assignee_id, "after": user.id})
    ticket.assignee_id = user.id
    return 1


def _act(clock: Clock, action: str, data: dict) -> None:
    record(
        "sla.action",
        clock.subject_type,
        clock.subject_id,
        actor=Actor.system(),
        data={"clock_id": clock.id, "action": action, **data},
    )


def _notify(batch: _Batch) -> int:
    """An in-app notification per person, clock and event (the unique key makes a
    second one impossible), and one email per person listing what concerns them."""
    wanted: dict[tuple, tuple] = {}
    for user, clock, event, to in batch.notices:
        wanted.setdefault((user.id, clock.id, event), (user, clock, event, to))
    if not wanted:
        return 0
    rows = [
        {
            "user_id": user.id,
            "clock_id": clock.id,
            "event": event,
            "subject_type": clock.subject_type,
            "subject_id": clock.subject_id,
            "created_at": utcnow(),
        }
        for user, clock, event, _to in wanted.values()
    ]
    inserted = insert_new(Notification, rows, Notification.user_id, Notification.clock_id, Notification.event)
    fresh = [wanted[tuple(row)] for row in inserted]
    told: dict[tuple[int, str, str], list[int]] = defaultdict(list)
    by_user: dict[int, list[tuple[Clock, str]]] = defaultdict(list)
    for user, clock, event, to in fresh:
        told[(clock.id, event, to)].append(user.id)
        by_user[user.id].append((clock, event))
    for (clock_id, event, to), user_ids in told.items():
        _act(batch.clocks[clock_id], f"notify_{event}", {"to": to, "user_ids": sorted(user_ids)})
    users = {user.id: user for user, _clock, _event, _to in fresh}
    for user_id, items in by_user.items():
        _email(users[user_id], items, batch)
    return len(fresh)


def _email(user: User, items: list[tuple[Clock, str]], batch: _Batch) -> None:
    lines = []
    for clock, event in sorted(items, key=lambda item: item[0].due_at):
        ticket = batch.tickets.get(clock.subject_id) if clock.subject_type == "ticket" else None
        lines.append(
            {
                "reference": ticket.reference if ticket else f"{clock.subject_type} {clock.subject_id}",
                "event": event,
                "metric": METRIC_LABELS[Metric(clock.metric)],
                "due_at": clock.due_at,
                "link": external_url("tickets.show", number=ticket.number) if ticket else "",
                "ticket_id": ticket.id if ticket else None,
            }
        )
    locale = user.locale or "en"
    with force_locale(locale):
        if len(lines) == 1:
            line = lines[0]
            subject = f"[{line['reference']}] {EVENT_LABELS[line['event']]}: {line['metric']}"
        else:
            subject = ngettext(
                "%(num)d deadline needs attention", "%(num)d deadlines need attention", len(lines)
            )
        body = render_template(
            "emails/sla_alert.txt", user=user, lines=lines, event_labels=EVENT_LABELS, tenant=current_tenant()
        )
    queue_email(
        to=user.email,
        subject=subject,
        body=body,
        locale=locale,
        ticket_id=lines[0]["ticket_id"] if len(lines) == 1 else None,
        actor=Actor.system(),
    )


# --- running it every minute -------------------------------------------------------------


def sweep_job() -> None:
    """The rq job: sweep, then book the next minute's run."""
    try:
        result = sweep()
        if result.warned or result.breached:
            log.info("sla sweep: %s", result)
    finally:
        schedule_next()


def schedule_next(now: datetime | None = None) -> str | None:
    """Book the sweep for the start of the next minute (once, however many book it)."""
    return jobs.book_next_minute(sweep_job, SWEEP_JOB_PREFIX, now)
