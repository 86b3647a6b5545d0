"""The refunds report: amounts requested, decided and paid per currency, by reason,
outcome and policy version; how long decisions and payouts took; overdue payouts."""

import statistics
from collections import defaultdict
from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import func, select

from crm.extensions import db
from crm.money import from_minor_units
from crm.policies.models import PolicyVersion
from crm.refunds.labels import OUTCOME_LABELS
from crm.refunds.models import DecisionStatus, Payout, RefundDecision
from crm.reports.complaints import ticket_conditions
from crm.reports.periods import Period
from crm.reports.sla import Filters
from crm.reports.tables import Table
from crm.sla.models import Clock, ClockState, Metric
from crm.tickets.labels import REASON_LABELS
from crm.tickets.models import Kind, Ticket

DAY = 86_400


def _days(values: list[float]) -> float | None:
    return round(statistics.median(values) / DAY, 1) if values else None


def refunds_tables(period: Period, now: datetime, filters: Filters | None = None) -> list[Table]:
    """The report's tables, of the tickets that pass ``filters`` (kind, reason, channel,
    priority, assignee)."""
    on_tickets = ticket_conditions(filters)
    receipt = func.coalesce(Ticket.received_at, Ticket.created_at)
    requested = db.session.execute(
        select(Ticket.currency, func.count(), func.coalesce(func.sum(Ticket.amount_minor), 0))
        .where(
            Ticket.kind == Kind.REFUND,
            Ticket.merged_into_id.is_(None),
            receipt >= period.start,
            receipt < period.end,
            *on_tickets,
        )
        .group_by(Ticket.currency)
    ).all()
    decided_at = func.coalesce(RefundDecision.decided_at, RefundDecision.proposed_at)
    decisions = db.session.execute(
        select(
            RefundDecision.id,
            RefundDecision.currency,
            RefundDecision.amount_minor,
            RefundDecision.outcome,
            Ticket.reason,
            PolicyVersion.number,
            decided_at,
            receipt,
        )
        .join(Ticket, Ticket.id == RefundDecision.ticket_id)
        .join(PolicyVersion, PolicyVersion.id == RefundDecision.policy_version_id)
        .where(
            RefundDecision.status == DecisionStatus.APPROVED,
            decided_at >= period.start,
            decided_at < period.end,
            *on_tickets,
        )
    ).all()
    payouts = db.session.execute(
        select(RefundDecision.currency, Payout.amount_minor, Payout.paid_at, decided_at)
        .join(RefundDecision, RefundDecision.id == Payout.decision_id)
        .join(Ticket, Ticket.id == Payout.ticket_id)
        .where(Payout.paid_at >= period.start, Payout.paid_at < period.end, *on_tickets)
    ).all()

    by: dict[str, dict] = {
        "reason": defaultdict(int),
        "outcome": defaultdict(int),
        "version": defaultdict(int),
    }
    counts: dict[str, dict] = {
        "reason": defaultdict(int),
        "outcome": defaultdict(int),
        "version": defaultdict(int),
    }
    decided_sum: dict[str, int] = defaultdict(int)
    to_decision = []
    for _id, currency, amount, outcome, reason, version, when, received in decisions:
        decided_sum[currency] += amount
        for kind, key in (("reason", reason), ("outcome", outcome), ("version", version)):
            by[kind][(key, currency)] += amount
            counts[kind][(key, currency)] += 1
        to_decision.append((when - received).total_seconds())
    paid_sum: dict[str, int] = defaultdict(int)
    to_payout = []
    for currency, amount, paid_at, when in payouts:
        paid_sum[currency] += amount
        to_payout.append((paid_at - when).total_seconds())

    currencies = sorted({c for c, *_ in requested} | set(decided_sum) | set(paid_sum))
    requested_by = {currency: (n, amount) for currency, n, amount in requested}
    totals = Table(
        "refund_totals",
        _("Amounts"),
        [
            ("currency", _("Currency")),
            ("requests", _("Requests received")),
            ("requested", _("Requested")),
            ("decided", _("Decided")),
            ("paid", _("Paid")),
        ],
        [
            {
                "currency": currency,
                "requests": requested_by.get(currency, (0, 0))[0],
                "requested": str(from_minor_units(requested_by.get(currency, (0, 0))[1], currency)),
                "decided": str(from_minor_units(decided_sum[currency], currency)),
                "paid": str(from_minor_units(paid_sum[currency], currency)),
            }
            for currency in currencies
        ],
    )
    labels = {
        "reason": lambda key: str(REASON_LABELS.get(key, key)) if key else _("No reason given"),
        "outcome": lambda key: str(OUTCOME_LABELS.get(key, key)),
        "version": lambda key: _("Version %(n)d", n=key),
    }
    titles = {
        "reason": _("Decided, by reason"),
        "outcome": _("Decided, by outcome"),
        "version": _("Decided, by policy version"),
    }
    breakdowns = [
        Table(
            f"refunds_by_{kind}",
            titles[kind],
            [
                ("key", titles[kind]),
                ("currency", _("Currency")),
                ("decisions", _("Decisions")),
                ("amount", _("Amount")),
            ],
            [
                {
                    "key": labels[kind](key),
                    "currency": currency,
                    "decisions": counts[kind][(key, currency)],
                    "amount": str(from_minor_units(amount, currency)),
                }
                for (key, currency), amount in sorted(
                    by[kind].items(), key=lambda item: (str(item[0][0]), item[0][1])
                )
            ],
        )
        for kind in ("reason", "outcome", "version")
    ]
    timing = Table(
        "refund_timing",
        _("How long it took"),
        [("measure", _("Measure")), ("days", _("Median, days")), ("count", _("Count"))],
        [
            {"measure": _("From receipt to decision"), "days": _days(to_decision), "count": len(to_decision)},
            {"measure": _("From decision to payout"), "days": _days(to_payout), "count": len(to_payout)},
        ],
    )
    overdue = db.session.execute(
        select(Ticket.reference, Ticket.number, Clock.due_at)
        .join(Ticket, Ticket.id == Clock.subject_id)
        .where(
            Clock.subject_type == "ticket",
            Clock.metric == Metric.PAYOUT,
            Clock.state == ClockState.RUNNING,
            Clock.due_at < now,
            *on_tickets,
        )
        .order_by(Clock.due_at)
        .limit(500)
    ).all()
    overdue_table = Table(
        "overdue_payouts",
        _("Overdue payouts, now"),
        [("reference", _("Ticket")), ("due_at", _("Was due"))],
        [
            {"reference": reference, "number": number, "due_at": due_at.isoformat()}
            for reference, number, due_at in overdue
        ],
    )
    return [totals, *breakdowns, timing, overdue_table]
