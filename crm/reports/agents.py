"""The agents report: per person, tickets open and assigned now, handled in the period,
median first response, replies sent, and breaches on their tickets."""

import statistics
from collections import Counter, defaultdict
from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import func, select

from crm.access import Role
from crm.auth import service as auth
from crm.extensions import db
from crm.reports.complaints import ticket_conditions
from crm.reports.periods import Period
from crm.reports.sla import Filters
from crm.reports.tables import Table
from crm.sla.explain import format_minutes
from crm.sla.models import Clock, Metric
from crm.tickets.models import OPEN_STATES, EntryKind, Status, ThreadEntry, Ticket


def agents_table(period: Period, now: datetime, filters: Filters | None = None) -> Table:
    """Per person; with ``filters``, only the tickets that pass them count (and with an
    assignee, only that person is listed)."""
    in_period = lambda column: (column >= period.start) & (column < period.end)  # noqa: E731
    on_tickets = ticket_conditions(filters)
    open_now = dict(
        db.session.execute(
            select(Ticket.assignee_id, func.count())
            .where(Ticket.status.in_(OPEN_STATES), Ticket.assignee_id.is_not(None), *on_tickets)
            .group_by(Ticket.assignee_id)
        ).all()
    )
    handled = dict(
        db.session.execute(
            select(Ticket.assignee_id, func.count())
            .where(
                Ticket.status.in_((Status.RESOLVED, Status.CLOSED)),
                in_period(Ticket.resolved_at),
                *on_tickets,
            )
            .group_by(Ticket.assignee_id)
        ).all()
    )
    replies = dict(
        db.session.execute(
            select(ThreadEntry.author_user_id, func.count())
            .join(Ticket, Ticket.id == ThreadEntry.ticket_id)
            .where(ThreadEntry.kind == EntryKind.PUBLIC_REPLY, in_period(ThreadEntry.created_at), *on_tickets)
            .group_by(ThreadEntry.author_user_id)
        ).all()
    )
    first_responses: dict[int, list[float]] = defaultdict(list)
    for assignee, started, met in db.session.execute(
        select(Ticket.assignee_id, Clock.started_at, Clock.met_at)
        .join(Ticket, Ticket.id == Clock.subject_id)
        .where(
            Clock.subject_type == "ticket",
            Clock.metric == Metric.FIRST_RESPONSE,
            in_period(Clock.met_at),
            *on_tickets,
        )
    ):
        first_responses[assignee].append((met - started).total_seconds())
    breaches = Counter(
        db.session.scalars(
            select(Ticket.assignee_id)
            .join(Clock, (Clock.subject_id == Ticket.id) & (Clock.subject_type == "ticket"))
            .where(in_period(Clock.breached_at), *on_tickets)
        )
    )
    rows = []
    for user in auth.list_users():
        if user.role == Role.AUDITOR or (filters and filters.assignee and user.id != filters.assignee):
            continue
        waits = first_responses.get(user.id, [])
        rows.append(
            {
                "name": user.display_name,
                "open": open_now.get(user.id, 0),
                "handled": handled.get(user.id, 0),
                "first_response": format_minutes(int(statistics.median(waits)) // 60) if waits else None,
                "replies": replies.get(user.id, 0),
                "breaches": breaches.get(user.id, 0),
            }
        )
    return Table(
        "agents",
        _("Agents"),
        [
            ("name", _("Name")),
            ("open", _("Open and assigned now")),
            ("handled", _("Resolved in the period")),
            ("first_response", _("Median first response")),
            ("replies", _("Replies sent")),
            ("breaches", _("Deadlines breached")),
        ],
        rows,
    )
