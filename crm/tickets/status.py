"""A ticket's status changes, only along ``models.TRANSITIONS``: each one tells the clocks,
adds a line to the thread and records its audit event."""

from flask_babel import lazy_gettext as _l

from crm.audit.chain import format_instant
from crm.audit.service import Actor, record
from crm.auth.models import User
from crm.columns import utcnow
from crm.errors import Conflict
from crm.sla import clocks
from crm.tickets.labels import STATUS_LABELS
from crm.tickets.models import TRANSITIONS, EntryKind, Status, Ticket
from crm.tickets.thread import add_entry, via


def set_status(
    ticket: Ticket, new: Status, actor: Actor, *, author_kind: str, author: User | None = None
) -> None:
    old = Status(ticket.status)
    if new == old:
        return
    if new not in TRANSITIONS[old]:
        raise Conflict(
            _l(
                "A ticket that is %(old)s cannot become %(new)s.",
                old=STATUS_LABELS[old],
                new=STATUS_LABELS[new],
            ),
            "status",
        )
    at = utcnow()
    ticket.status = new
    if new in (Status.RESOLVED, Status.WITHDRAWN):
        # When the request last ended: a report counts a complaint closed then (a
        # reopened one counts once, when it finally closes).
        ticket.resolved_at = at
    clocks.on_status_change(ticket, old, new, actor=actor, at=at)
    add_entry(
        ticket,
        EntryKind.STATUS_CHANGE,
        author_kind=author_kind,
        author=author,
        details={"from": old, "to": new, **via(actor)},
    )
    record(
        "ticket.status_changed",
        "ticket",
        ticket.id,
        actor=actor,
        data={"before": old, "after": new, "at": format_instant(at)},
    )
