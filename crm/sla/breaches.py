"""What happens when a clock's warning or due time passes: the warning or breach is
recorded once, at its own time, the rule's breach actions run, and the people concerned
are told in the app and by email.

Two callers notice it: the sweep, a minute at most after the time, and any transition
of the clock (a pause, a reply, a resolution, a retarget), which checks its own clock
first. Both claim the fact with a conditional ``UPDATE ... WHERE breached_at IS NULL``, so
whichever comes first records it and the other finds nothing left to do.
"""

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from flask import render_template
from flask_babel import force_locale, ngettext
from sqlalchemy import select, update
from sqlalchemy.orm.attributes import set_committed_value

from crm.access import Role
from crm.audit.chain import format_instant
from crm.audit.service import Actor, record
from crm.auth.models import User
from crm.columns import utcnow
from crm.extensions import db, insert_new
from crm.leads.models import Lead
from crm.notify import staff as staff_notices
from crm.notify.models import Automatic
from crm.notify.service import queue_email
from crm.sla import rules, versions
from crm.sla.labels import EVENT_LABELS, METRIC_LABELS
from crm.sla.models import Clock, ClockState, Metric, Notification
from crm.tickets.links import external_url
from crm.tickets.models import EntryKind, Priority, ThreadEntry, Ticket
from tenants import current_tenant

log = logging.getLogger(__name__)
# A breach under a rule with no actions (or a regulatory or lead clock) still tells people.
DEFAULT_BREACH_ACTIONS = (rules.Action.NOTIFY_ASSIGNEE, rules.Action.NOTIFY_MANAGERS)
# The actions that change the ticket; a clock already met or stopped needs none of them.
ESCALATIONS = (rules.Action.RAISE_PRIORITY, rules.Action.REASSIGN)
RAISED = {Priority.LOW: Priority.NORMAL, Priority.NORMAL: Priority.HIGH, Priority.HIGH: Priority.URGENT}
WARNED, BREACHED = "warned", "breached"
SWEEP = "sweep"
# Transitions that end the clock: a breach they find gets no escalation.
ENDING = frozenset({"met", "stopped"})


@dataclass
class _Batch:
    """What one call of ``act`` has loaded and decided."""

    clocks: dict[int, Clock]
    tickets: dict[int, Ticket]
    leads: dict[int, Lead] = field(default_factory=dict)
    users: dict[int, User] = field(default_factory=dict)
    managers: list[User] | None = None
    # (who, which clock, "warned"/"breached", to whom it was meant: "assignee"/"managers")
    notices: list[tuple[User, Clock, str, str]] = field(default_factory=list)


@dataclass
class Outcome:
    warned: int = 0
    breached: int = 0
    actions: int = 0


def act(
    warned: Iterable[Clock],
    breached: Iterable[Clock],
    now: datetime,
    *,
    detected_by: Mapping[int, str] | None = None,
) -> Outcome:
    """Record the warnings and breaches just claimed for these clocks (their
    ``warned_at``/``breached_at`` already set), run each breached clock's actions and tell
    the people concerned, one email each for the lot. ``detected_by`` names, by clock id,
    the transition that noticed a breach (the sweep otherwise); one that ends the clock
    (met, stopped) leaves out the actions that change the ticket (raising its priority,
    reassigning it): there is nothing left to hurry."""
    detected_by = detected_by or {}
    warned, breached = sorted(warned, key=_by_id), sorted(breached, key=_by_id)
    clocks = {clock.id: clock for clock in (*warned, *breached)}
    ticket_ids = [clock.subject_id for clock in clocks.values() if clock.subject_type == "ticket"]
    lead_ids = [clock.subject_id for clock in clocks.values() if clock.subject_type == "lead"]
    batch = _Batch(
        clocks,
        {t.id: t for t in db.session.scalars(select(Ticket).where(Ticket.id.in_(ticket_ids)))},
        {lead.id: lead for lead in db.session.scalars(select(Lead).where(Lead.id.in_(lead_ids)))}
        if lead_ids
        else {},
    )
    owners = (*batch.tickets.values(), *batch.leads.values())
    assignee_ids = {subject.assignee_id for subject in owners if subject.assignee_id}
    batch.users = {
        user.id: user for user in db.session.scalars(select(User).where(User.id.in_(assignee_ids)))
    }
    outcome = Outcome(warned=len(warned), breached=len(breached))
    for clock in warned:
        _record(clock, WARNED, now, SWEEP)
        assignee = _assignee(batch, clock)
        to = "assignee" if assignee else "managers"
        batch.notices += [(user, clock, WARNED, to) for user in assignee or _managers(batch)]
    for clock in breached:
        how = detected_by.get(clock.id, SWEEP)
        _record(clock, BREACHED, now, how)
        outcome.actions += _run_breach_actions(batch, clock, escalate=how not in ENDING)
    outcome.actions += _notify(batch)
    return outcome


def _by_id(clock: Clock) -> int:
    return clock.id


def overdue(clocks: Iterable[Clock], at: datetime) -> list[Clock]:
    """Those of ``clocks`` running past their due time at ``at`` with no breach recorded.
    Acting at the due instant itself is in time."""
    return [
        clock
        for clock in clocks
        if clock.state == ClockState.RUNNING
        and clock.alerts
        and clock.breached_at is None
        and clock.due_at is not None
        and clock.due_at < at
    ]


def record_overdue(by_transition: Mapping[str, Iterable[Clock]], at: datetime) -> list[Clock]:
    """A transition at ``at`` checks its own clocks before it changes them: each one
    already past its due time gets its breach recorded now, at the due time, as the sweep
    would have, unless the sweep (or another transition) got there first. The clocks come
    by the transition about to change them ("paused", "met", "stopped", "resumed",
    "retargeted", "restarted"); the ones whose breach this call recorded are returned.

    The session is flushed first, so the claim sees the clocks' current due times (a
    retarget's new one included); afterwards the clock objects agree with their rows."""
    transition = {clock.id: name for name, clocks in by_transition.items() for clock in overdue(clocks, at)}
    if not transition:
        return []
    db.session.flush()
    by_id = {
        clock.id: clock for clocks in by_transition.values() for clock in clocks if clock.id in transition
    }
    claimed = db.session.execute(
        update(Clock)
        .where(
            Clock.id.in_(by_id),
            Clock.state == ClockState.RUNNING,
            Clock.alerts.is_(True),
            Clock.breached_at.is_(None),
            Clock.due_at < at,
        )
        .values(breached_at=Clock.due_at, check_at=None)
        .returning(Clock.id),
        execution_options={"synchronize_session": False},
    )
    claimed_ids = set(claimed.scalars())
    for clock_id, clock in by_id.items():
        if clock_id in claimed_ids:
            set_committed_value(clock, "breached_at", clock.due_at)
            set_committed_value(clock, "check_at", None)
        else:  # recorded meanwhile by someone else: take their row as it is now
            db.session.refresh(clock)
    breached = [by_id[clock_id] for clock_id in sorted(claimed_ids)]
    if breached:
        act((), breached, at, detected_by=transition)
    return breached


def _record(clock: Clock, event: str, now: datetime, detected_by: str) -> None:
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
            "detected_by": detected_by,
            "due_at": format_instant(clock.due_at),
        },
    )


def _managers(batch: _Batch) -> list[User]:
    if batch.managers is None:
        batch.managers = staff_notices.managers()
    return batch.managers


def _subject(batch: _Batch, clock: Clock) -> Ticket | Lead | None:
    return (batch.tickets if clock.subject_type == "ticket" else batch.leads).get(clock.subject_id)


def _assignee(batch: _Batch, clock: Clock) -> list[User]:
    """The ticket's or the lead's owner, if active."""
    subject = _subject(batch, clock)
    user = batch.users.get(subject.assignee_id) if subject and subject.assignee_id else None
    return [user] if user is not None and user.is_active else []


def _rule(clock: Clock) -> rules.Rule | None:
    if clock.metric not in (Metric.FIRST_RESPONSE, Metric.NEXT_RESPONSE, Metric.RESOLUTION):
        return None
    version = versions.by_id(clock.config_version_id)
    return versions.policy(version).rules[int(clock.rule) - 1] if version else None


def _run_breach_actions(batch: _Batch, clock: Clock, *, escalate: bool) -> int:
    """The actions of the rule the clock started under; each change is audited, and the
    people to tell are gathered for ``_notify``."""
    rule = _rule(clock)
    actions = rule.actions if rule and rule.actions else DEFAULT_BREACH_ACTIONS
    if not escalate:
        actions = tuple(action for action in actions if action not in ESCALATIONS)
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
            _on_timeline(ticket, "priority", ticket.priority, RAISED[ticket.priority])
            ticket.priority = RAISED[ticket.priority]
            done += 1
        elif action == rules.Action.REASSIGN and ticket is not None:
            done += _reassign(clock, ticket, rule.reassign_to)
    return done


def _reassign(clock: Clock, ticket: Ticket, target: int | str | None) -> int:
    if target == rules.MANAGERS_QUEUE:
        _act(clock, rules.Action.REASSIGN, {"before": ticket.assignee_id, "after": None, "to": "managers"})
        _on_timeline(ticket, "assignee_id", ticket.assignee_id, None)
        ticket.assignee_id = None
        ticket.needs_manager = True
        return 1
    user = db.session.get(User, target) if isinstance(target, int) else None
    if user is None or not user.is_active or user.role == Role.AUDITOR:
        log.warning("sweep: cannot reassign ticket %s to user %s", ticket.id, target)
        return 0
    _act(clock, rules.Action.REASSIGN, {"before": ticket.assignee_id, "after": user.id})
    _on_timeline(ticket, "assignee_id", ticket.assignee_id, user.id)
    ticket.assignee_id = user.id
    return 1


def _on_timeline(ticket: Ticket, field_name: str, before, after) -> None:
    """The change in the ticket's timeline, as a person's change is ("Priority raised
    from normal to high by the SLA policy"): a system event, since no one made it."""
    if before != after:
        db.session.add(
            ThreadEntry(
                ticket_id=ticket.id,
                kind=EntryKind.SYSTEM_EVENT,
                author_kind="system",
                body="",
                details={"changed": field_name, "from": before, "to": after, "by": "sla"},
            )
        )


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
        if staff_notices.wants_email(users[user_id]):
            _email(users[user_id], items, batch)
    return len(fresh)


def _email(user: User, items: list[tuple[Clock, str]], batch: _Batch) -> None:
    lines = []
    for clock, event in sorted(items, key=lambda item: item[0].due_at):
        ticket = batch.tickets.get(clock.subject_id) if clock.subject_type == "ticket" else None
        lead = batch.leads.get(clock.subject_id) if clock.subject_type == "lead" else None
        if ticket:
            reference, link = ticket.reference, external_url("tickets.show", number=ticket.number)
        elif lead:
            reference, link = lead.reference, external_url("leads.show", reference=lead.reference)
        else:
            reference, link = f"{clock.subject_type} {clock.subject_id}", ""
        lines.append(
            {
                "reference": reference,
                "event": event,
                "metric": METRIC_LABELS[Metric(clock.metric)],
                "due_at": clock.due_at,
                "link": link,
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
        automatic=Automatic.GENERATED,
    )
