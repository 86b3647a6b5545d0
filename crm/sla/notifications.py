"""A staff member's in-app notifications (the sweep writes those of deadlines,
``crm.notify.staff`` those of tickets' events): reading them and marking them read."""

from sqlalchemy import Row, func, select, update

from crm.audit.service import Actor, record
from crm.columns import utcnow
from crm.extensions import db
from crm.notify.staff import TICKET_EVENT_LABELS
from crm.sla.labels import EVENT_LABELS
from crm.sla.models import Clock, Notification
from crm.tickets.models import Ticket

SHOWN = 100
# What each kind of notification is called on the page: a deadline's, or a ticket event's.
LABELS = {**EVENT_LABELS, **TICKET_EVENT_LABELS}


def recent(user_id: int) -> list[Row]:
    """The user's newest notifications, each with its clock (None for a ticket event) and
    ticket number and reference."""
    return db.session.execute(
        select(Notification, Clock, Ticket.number, Ticket.reference)
        .outerjoin(Clock, Clock.id == Notification.clock_id)
        .outerjoin(Ticket, (Notification.subject_type == "ticket") & (Ticket.id == Notification.subject_id))
        .where(Notification.user_id == user_id)
        .order_by(Notification.id.desc())
        .limit(SHOWN)
    ).all()


def unread_count(user_id: int) -> int:
    return db.session.scalar(
        select(func.count())
        .select_from(Notification)
        .where(Notification.user_id == user_id, Notification.read_at.is_(None))
    )


def mark_all_read(user_id: int, *, actor: Actor) -> int:
    """Mark the user's unread notifications read (audited when there were any); how many."""
    marked = db.session.execute(
        update(Notification)
        .where(Notification.user_id == user_id, Notification.read_at.is_(None))
        .values(read_at=utcnow())
    ).rowcount
    if marked:
        record("notifications.read", "user", user_id, actor=actor, data={"count": marked})
    return marked
