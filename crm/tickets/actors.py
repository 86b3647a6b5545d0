"""Who acts on a ticket, as its audit events name them: a member of staff, or the
requester through their tracking link or the form."""

from crm.audit.service import Actor
from crm.auth.models import User
from crm.tickets.models import Ticket


def customer_actor(ticket: Ticket, ip: str | None) -> Actor:
    """The requester of ``ticket``, acting through their tracking link or the form."""
    return Actor("customer", str(ticket.customer_id), f"customer:{ticket.customer_id}", ip)


def staff_actor(user: User, ip: str | None) -> Actor:
    return Actor("user", str(user.id), user.email, ip)
