"""Telling staff that a ticket needs them: a customer replied, a customer is not
satisfied, a refund decision waits for approval. The same path as the SLA's warnings
and breaches (``crm.sla.breaches``): an in-app notification under the header's bell,
written in the transaction of the action, and an email through the outbox, sent after
the commit, to those who keep email notifications on."""

import enum
from collections.abc import Iterable

from flask import render_template
from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from crm.access import Role
from crm.audit.service import Actor, record
from crm.auth.models import User
from crm.extensions import db
from crm.notify.models import Automatic
from crm.notify.service import queue_email
from crm.sla.models import Notification
from crm.tickets.links import external_url
from crm.tickets.models import Ticket
from tenants import current_tenant


class TicketEvent(enum.StrEnum):
    """What happened to a ticket that someone on the staff must act on."""

    CUSTOMER_REPLIED = "customer_reply"
    NOT_SATISFIED = "not_satisfied"
    NEEDS_APPROVAL = "needs_approval"


TICKET_EVENT_LABELS = {
    TicketEvent.CUSTOMER_REPLIED: _l("The customer replied"),
    TicketEvent.NOT_SATISFIED: _l("The customer is not satisfied"),
    TicketEvent.NEEDS_APPROVAL: _l("A refund decision waits for approval"),
}


def managers() -> list[User]:
    """The tenant's active managers and admins, who hear of what has no one else to."""
    query = select(User).where(User.active.is_(True), User.role.in_((Role.MANAGER, Role.ADMIN)))
    return [user for user in db.session.scalars(query.order_by(User.id)) if user.is_active]


def assignee_or_managers(ticket: Ticket) -> tuple[list[User], str]:
    """Whom a ticket's news is for: its assignee, or the managers when nobody (active)
    has it; with "assignee" or "managers" to say which."""
    assignee = db.session.get(User, ticket.assignee_id) if ticket.assignee_id else None
    if assignee is not None and assignee.is_active:
        return [assignee], "assignee"
    return managers(), "managers"


def tell_assignee(ticket: Ticket, event: TicketEvent) -> list[User]:
    """Notify the ticket's assignee of ``event``, or the managers when it has none."""
    users, to = assignee_or_managers(ticket)
    return tell(ticket, event, users, to=to)


def wants_email(user: User) -> bool:
    """Whether ``user`` gets notifications by email as well as in the app."""
    return user.email_notifications is not False


def tell(ticket: Ticket, event: TicketEvent, users: Iterable[User], *, to: str) -> list[User]:
    """Notify each of ``users`` (once each) of ``event`` on ``ticket``: in the app, and by
    email to those who want it. One audit event names everyone told, as the sweep's do.
    The users told."""
    told = list({user.id: user for user in users if user.is_active}.values())
    if not told:
        return []
    db.session.add_all(
        Notification(user_id=user.id, clock_id=None, event=event, subject_type="ticket", subject_id=ticket.id)
        for user in told
    )
    record(
        "ticket.staff_notified",
        "ticket",
        ticket.id,
        actor=Actor.system(),
        data={"event": event, "to": to, "user_ids": sorted(user.id for user in told)},
    )
    link = external_url("tickets.show", number=ticket.number)
    for user in told:
        if wants_email(user):
            _email(user, ticket, event, link)
    return told


def _email(user: User, ticket: Ticket, event: TicketEvent, link: str) -> None:
    locale = user.locale or current_tenant().locale or "en"
    with force_locale(locale):
        subject = f"[{ticket.reference}] {TICKET_EVENT_LABELS[event]}"
        body = render_template(
            "emails/staff_notice.txt",
            user=user,
            ticket=ticket,
            event=event,
            link=link,
            tenant=current_tenant(),
        )
    queue_email(
        to=user.email,
        subject=subject,
        body=body,
        locale=locale,
        ticket_id=ticket.id,
        actor=Actor.system(),
        automatic=Automatic.GENERATED,
    )


def set_email_notifications(user: User, wanted: bool, *, actor: Actor) -> None:
    """The user's choice: notifications by email as well as in the app, or in the app only."""
    if wanted == wants_email(user):
        return
    record(
        "user.email_notifications_changed",
        "user",
        user.id,
        actor=actor,
        data={"before": wants_email(user), "after": wanted},
    )
    user.email_notifications = wanted
