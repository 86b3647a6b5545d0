"""The reports, recomputed from the audit trail alone: no ticket, clock or decision row
is read, only the tenant's events. ``reports verify`` runs this beside the reports from
the tables and compares the numbers.

What each fact comes from (events written since issue 14 carry the exact instants; older
ones fall back on the event's own time, microseconds later):
- a clock: the latest summary in its ``clock.*`` events; its breach, ``clock.breached``;
- a complaint: ``ticket.created`` (kind, reason, ``created_at``), ``ticket.receipt_time_set``,
  ``ticket.status_changed`` (``at``), ``ticket.merged``;
- the decision in force: ``refund.decision_proposed`` (outcome, needs approval) and
  ``refund.decision_approved``; redress: ``refund.payout_recorded``; escalations:
  ``refund.escalation_recorded`` and ``refund.escalation_outcome``.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime

from sqlalchemy import select

from crm.audit.models import AuditEvent
from crm.extensions import db
from crm.reports.complaints import CLOSED, COMPLAINT_KINDS, ComplaintFact, EscalationFact, on_time
from crm.reports.sla import ClockFact
from crm.sla.models import ClockState, Metric

ACTIONS = (
    "clock.",
    "ticket.created",
    "ticket.receipt_time_set",
    "ticket.status_changed",
    "ticket.merged",
    "refund.decision_proposed",
    "refund.decision_approved",
    "refund.payout_recorded",
    "refund.escalation_recorded",
    "refund.escalation_outcome",
)
BATCH = 5000


def _instant(text: str | None, fallback: datetime | None = None) -> datetime | None:
    if not text:
        return fallback
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _events() -> Iterator[AuditEvent]:
    """The tenant's events in chain order, a batch at a time."""
    after = 0
    while True:
        batch = list(
            db.session.scalars(
                select(AuditEvent).where(AuditEvent.seq > after).order_by(AuditEvent.seq).limit(BATCH)
            )
        )
        if not batch:
            return
        for event in batch:
            if event.action.startswith(ACTIONS):
                yield event
        after = batch[-1].seq
        db.session.expunge_all()


@dataclass
class _Ticket:
    kind: str
    reason: str | None
    received_at: datetime
    status: str = "new"
    closed_at: datetime | None = None
    merged: bool = False


@dataclass
class Trail:
    """What the trail says, folded event by event."""

    clocks: dict[int, dict] = field(default_factory=dict)  # clock id -> latest summary + subject
    breached: dict[int, datetime] = field(default_factory=dict)
    tickets: dict[int, _Ticket] = field(default_factory=dict)
    proposed: dict[int, tuple[int, str, bool]] = field(
        default_factory=dict
    )  # decision -> (ticket, outcome, waits)
    approved: set[int] = field(default_factory=set)
    payouts: list[tuple[str, int, datetime]] = field(default_factory=list)
    escalations: dict[int, EscalationFact] = field(default_factory=dict)  # by escalation id


def read_trail() -> Trail:
    trail = Trail()
    for event in _events():
        data, action = event.data, event.action
        subject = int(event.subject_id) if event.subject_id and event.subject_id.isdigit() else None
        if action == "clock.breached":
            trail.breached[data["clock_id"]] = _instant(data["at"])
        elif action.startswith("clock.") and "clocks" in data:
            for summary in data["clocks"]:
                fallback = event.occurred_at if action == "clock.met" else None
                kept = {**summary, "subject_type": event.subject_type, "subject_id": subject}
                kept["met_at"] = (
                    _instant(summary.get("met_at"), fallback) if summary["state"] == ClockState.MET else None
                )
                trail.clocks[summary["clock_id"]] = kept
        elif action == "ticket.created":
            trail.tickets[subject] = _Ticket(
                data["kind"], data.get("reason"), _instant(data.get("created_at"), event.occurred_at)
            )
        elif action == "ticket.receipt_time_set" and subject in trail.tickets:
            trail.tickets[subject].received_at = _instant(data["after"])
        elif action == "ticket.status_changed" and subject in trail.tickets:
            ticket = trail.tickets[subject]
            ticket.status = data["after"]
            if data["after"] in ("resolved", "withdrawn"):
                ticket.closed_at = _instant(data.get("at"), event.occurred_at)
        elif action == "ticket.merged" and subject in trail.tickets:
            trail.tickets[subject].merged = True
        elif action == "refund.decision_proposed":
            trail.proposed[data["decision_id"]] = (subject, data["outcome"], bool(data.get("needs_approval")))
        elif action == "refund.decision_approved":
            trail.approved.add(data["decision_id"])
        elif action == "refund.payout_recorded":
            trail.payouts.append((data["currency"], data["amount_minor"], _instant(data["paid_at"])))
        elif action == "refund.escalation_recorded":
            trail.escalations[data["escalation_id"]] = EscalationFact(
                data["body"], date.fromisoformat(data["received_on"])
            )
        elif action == "refund.escalation_outcome" and data["escalation_id"] in trail.escalations:
            recorded = trail.escalations[data["escalation_id"]]
            trail.escalations[data["escalation_id"]] = replace(
                recorded, outcome=data["outcome"], decided_on=date.fromisoformat(data["decided_on"])
            )
    return trail


def clock_facts(trail: Trail) -> list[ClockFact]:
    """The clocks as the trail knows them (the marker clocks and stopped ones left out,
    as the report from the tables does)."""
    facts = []
    for clock_id, summary in trail.clocks.items():
        if summary["metric"] == Metric.REGULATORY_SUMMARY or summary["state"] == ClockState.STOPPED:
            continue
        due_at = _instant(summary.get("due_at"))
        if due_at is None:
            continue
        facts.append(
            ClockFact(
                clock_id=clock_id,
                metric=summary["metric"],
                state=summary["state"],
                unit=summary["unit"],
                started_at=_instant(summary["started_at"]),
                due_at=due_at,
                met_at=summary["met_at"],
                breached_at=trail.breached.get(clock_id),
                paused_seconds=summary["paused_seconds"],
                calendar_version_id=summary["calendar_version_id"],
            )
        )
    return facts


def complaint_facts(trail: Trail) -> list[ComplaintFact]:
    in_force: dict[int, tuple[int, str]] = {}
    for decision_id, (ticket_id, outcome, waits) in trail.proposed.items():
        if (not waits or decision_id in trail.approved) and decision_id > in_force.get(ticket_id, (0, ""))[0]:
            in_force[ticket_id] = (decision_id, outcome)
    finals = {
        summary["subject_id"]: (summary["rule"], on_time(summary["state"], trail.breached.get(clock_id)))
        for clock_id, summary in trail.clocks.items()
        if summary["subject_type"] == "ticket" and summary["metric"] == Metric.REGULATORY_FINAL
    }
    return [
        ComplaintFact(
            ticket_id=ticket_id,
            reason=ticket.reason,
            received_at=ticket.received_at,
            closed_at=ticket.closed_at if ticket.status in CLOSED else None,
            outcome=in_force.get(ticket_id, (0, None))[1],
            profile=finals.get(ticket_id, (None, None))[0],
            met_on_time=finals.get(ticket_id, (None, None))[1],
        )
        for ticket_id, ticket in trail.tickets.items()
        if ticket.kind in COMPLAINT_KINDS and not ticket.merged
    ]
