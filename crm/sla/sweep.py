"""The sweep: every minute, find the clocks whose warning or due time has passed, record
the warning or breach once, run the policy's actions and tell the people concerned.

It reads the partial index on ``clocks.check_at`` (only clocks with something left to
detect are in it), so its cost follows the number due, not the number of tickets. Each
clock is claimed with a conditional UPDATE (``... WHERE breached_at IS NULL``): of two
sweeps running at once, or one repeated, exactly one records the breach and acts.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app, render_template
from flask_babel import force_locale
from sqlalchemy import select, update

from crm import jobs
from crm.access import Role
from crm.audit.chain import format_instant
from crm.audit.service import Actor, record
from crm.auth.models import User
from crm.columns import utcnow
from crm.extensions import db, insert_or_ignore
from crm.notify.service import queue_email
from crm.sla import clocks as clock_service
from crm.sla import rules, versions
from crm.sla.labels import EVENT_LABELS, METRIC_LABELS
from crm.sla.models import Clock, ClockState, Metric, Notification
from crm.tickets.links import external_url
from crm.tickets.models import Priority, Ticket
from tenants import Tenant, current_tenant, tenant_context

log = logging.getLogger(__name__)
BATCH = 200
SWEEP_JOB_PREFIX = "ledgerdesk:sla-sweep:"
# Warnings go to the assignee; a breach with no actions configured still tells people.
DEFAULT_BREACH_ACTIONS = (rules.Action.NOTIFY_ASSIGNEE, rules.Action.NOTIFY_MANAGERS)
RAISED = {Priority.LOW: Priority.NORMAL, Priority.NORMAL: Priority.HIGH, Priority.HIGH: Priority.URGENT}


@dataclass
class SweepResult:
    warned: int = 0
    breached: int = 0
    actions: int = 0


def sweep(now: datetime | None = None) -> SweepResult:
    """Detect every warning and breach due by ``now``, across all tenants, each in its
    own tenant's context and its own transaction."""
    now = now or utcnow()
    result = SweepResult()
    seen: set[int] = set()
    while True:
        rows = db.session.execute(
            select(Clock.id, Clock.tenant_id)
            .where(Clock.check_at <= now)
            .order_by(Clock.check_at)
            .limit(BATCH),
            execution_options={"tenant_guard": False},
        ).all()
        db.session.commit()
        fresh = [(clock_id, tenant_id) for clock_id, tenant_id in rows if clock_id not in seen]
        if not fresh:
            return result
        for clock_id, tenant_id in fresh:
            seen.add(clock_id)
            tenant = db.session.get(Tenant, tenant_id)
            with tenant_context(tenant):
                try:
                    _check(clock_id, now, result)
                    db.session.commit()
                except Exception:
                    db.session.rollback()
                    log.exception("sweep: clock %s of tenant %s failed", clock_id, tenant_id)


def _claim(clock: Clock, column, value: datetime) -> bool:
    """Set ``column`` if nobody has yet; True for the one caller that did."""
    claimed = db.session.execute(
        update(Clock)
        .where(Clock.id == clock.id, column.is_(None), Clock.state == ClockState.RUNNING)
        .values({column: value})
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:
        return False
    db.session.refresh(clock)
    return True


def _check(clock_id: int, now: datetime, result: SweepResult) -> None:
    clock = db.session.get(Clock, clock_id)
    if clock is None or clock.state != ClockState.RUNNING or clock.check_at is None or clock.check_at > now:
        return
    breached = clock.due_at is not None and clock.due_at <= now
    warning = clock.warned_at is None and clock.warn_at is not None and clock.warn_at <= now
    # Past due as well: the warning is claimed so it never comes later; the breach says it all.
    if warning and _claim(clock, Clock.warned_at, clock.warn_at) and not breached:
        _record(clock, "warned", now)
        result.warned += 1
        result.actions += _notify(clock, "warned", _assignee_or_managers(clock))
    if breached and clock.breached_at is None and _claim(clock, Clock.breached_at, clock.due_at):
        _record(clock, "breached", now)
        result.breached += 1
        result.actions += _run_breach_actions(clock)
    clock_service.reschedule(clock)
    ticket = _ticket(clock)
    if ticket is not None:
        clock_service.refresh_ticket(ticket, clock_service.clocks_of("ticket", ticket.id))


def _record(clock: Clock, event: str, now: datetime) -> None:
    at = clock.warned_at if event == "warned" else clock.breached_at
    record(
        f"clock.{event}",
        clock.subject_type,
        clock.subject_id,
        actor=Actor.system(),
        data={
            "clock_id": clock.id,
            "metric": clock.metric,
            "at": format_instant(at),
            "detected_at": format_instant(now),
            "due_at": format_instant(clock.due_at),
        },
    )


def _ticket(clock: Clock) -> Ticket | None:
    if clock.subject_type != "ticket":
        return None
    return db.session.get(Ticket, clock.subject_id)


def _managers() -> list[User]:
    query = select(User).where(User.active.is_(True), User.role.in_((Role.MANAGER, Role.ADMIN)))
    return [user for user in db.session.scalars(query.order_by(User.id)) if user.is_active]


def _assignee(clock: Clock) -> list[User]:
    ticket = _ticket(clock)
    if ticket is None or ticket.assignee_id is None:
        return []
    user = db.session.get(User, ticket.assignee_id)
    return [user] if user is not None and user.is_active else []


def _assignee_or_managers(clock: Clock) -> list[User]:
    return _assignee(clock) or _managers()


def _rule(clock: Clock) -> rules.Rule | None:
    if clock.metric not in (Metric.FIRST_RESPONSE, Metric.NEXT_RESPONSE, Metric.RESOLUTION):
        return None
    version = versions.by_id(clock.config_version_id)
    return versions.policy(version).rules[int(clock.rule) - 1] if version else None


def _run_breach_actions(clock: Clock) -> int:
    """The actions of the rule the clock started under (regulatory clocks and leads:
    tell the assignee and the managers). Each action is audited."""
    rule = _rule(clock)
    actions = rule.actions if rule and rule.actions else DEFAULT_BREACH_ACTIONS
    ticket = _ticket(clock)
    done = 0
    for action in actions:
        if action == rules.Action.NOTIFY_ASSIGNEE:
            done += _notify(clock, "breached", _assignee(clock) or ([] if ticket else _managers()))
        elif action == rules.Action.NOTIFY_MANAGERS:
            done += _notify(clock, "breached", _managers())
        elif action == rules.Action.RAISE_PRIORITY and ticket is not None:
            raised = RAISED.get(ticket.priority)
            if raised:
                _act(clock, action, {"before": ticket.priority, "after": raised})
                ticket.priority = raised
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


def _notify(clock: Clock, event: str, users: list[User]) -> int:
    """An in-app notification and an email for each user, once per clock and event."""
    notified = []
    for user in users:
        fresh = insert_or_ignore(
            Notification,
            {
                "user_id": user.id,
                "clock_id": clock.id,
                "event": event,
                "subject_type": clock.subject_type,
                "subject_id": clock.subject_id,
                "created_at": utcnow(),
            },
        )
        if fresh:
            notified.append(user.id)
            _email(user, clock, event)
    if notified:
        _act(clock, f"notify_{event}", {"user_ids": notified})
    return len(notified)


def _email(user: User, clock: Clock, event: str) -> None:
    ticket = _ticket(clock)
    reference = ticket.reference if ticket else f"{clock.subject_type} {clock.subject_id}"
    link = external_url("tickets.show", number=ticket.number) if ticket else ""
    with force_locale(user.locale or "en"):
        subject = f"[{reference}] {EVENT_LABELS[event]}: {METRIC_LABELS[Metric(clock.metric)]}"
        body = render_template(
            "emails/sla_alert.txt",
            user=user,
            clock=clock,
            event=event,
            reference=reference,
            link=link,
            metric_label=str(METRIC_LABELS[Metric(clock.metric)]).lower(),
            tenant=current_tenant(),
        )
    queue_email(
        to=user.email,
        subject=subject,
        body=body,
        locale=user.locale or "en",
        ticket_id=ticket.id if ticket else None,
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
    """Book the sweep for the start of the next minute under a job id made of that
    minute, so however many workers or redeploys book it, it runs once a minute."""
    if not current_app.config.get("REDIS_URL"):
        return None
    at = (now or utcnow()).replace(second=0, microsecond=0) + timedelta(minutes=1)
    job_id = SWEEP_JOB_PREFIX + at.strftime("%Y%m%d%H%M")
    jobs.schedule_at(at, sweep_job, job_id=job_id)
    return job_id
