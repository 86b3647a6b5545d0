"""Finding tickets: by number, by a customer's tracking link, a customer's other
tickets; and the staff a ticket can be assigned to."""

from sqlalchemy import select

from crm.access import PERMISSIONS
from crm.auth.models import User
from crm.columns import utcnow
from crm.extensions import db
from crm.tickets.links import token_digest
from crm.tickets.models import Ticket, TrackingLink


def ticket_by_number(number: int) -> Ticket | None:
    return db.session.scalars(select(Ticket).where(Ticket.number == number)).one_or_none()


def merged_into(ticket: Ticket) -> Ticket | None:
    """The ticket this one was merged into, if it was."""
    if ticket.merged_into_id is None:
        return None
    return db.session.scalars(select(Ticket).where(Ticket.id == ticket.merged_into_id)).one_or_none()


def ticket_by_tracking_token(token: str) -> Ticket | None:
    """The ticket a customer's secret link opens, if the link is real and not expired."""
    if not token or len(token) > 100:
        return None
    link = db.session.scalars(
        select(TrackingLink).where(TrackingLink.token_hash == token_digest(token))
    ).one_or_none()
    if link is None or link.expires_at <= utcnow():
        return None
    return db.session.scalars(select(Ticket).where(Ticket.id == link.ticket_id)).one_or_none()


def customer_tickets(customer_id: int, *, excluding: int | None = None) -> list[Ticket]:
    query = (
        select(Ticket).where(Ticket.customer_id == customer_id).order_by(Ticket.created_at.desc()).limit(50)
    )
    return [ticket for ticket in db.session.scalars(query) if ticket.id != excluding]


def list_assignable_users() -> list[User]:
    """Who a ticket can be given to: active staff whose role works tickets (not auditors)."""
    query = (
        select(User)
        .where(User.active.is_(True), User.role.in_(sorted(PERMISSIONS["tickets.work"])))
        .order_by(User.display_name, User.email)
    )
    return [user for user in db.session.scalars(query) if user.is_active]
