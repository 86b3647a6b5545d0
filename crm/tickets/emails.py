"""The emails a customer gets about their ticket, written in the customer's language."""

from flask import render_template
from flask_babel import force_locale
from flask_babel import lazy_gettext as _l

from crm.notify.models import Automatic
from crm.sla.clocks import clocks_of
from crm.sla.explain import public_deadlines
from crm.sla.models import Clock
from crm.tickets.models import Ticket
from tenants import current_tenant

SUBJECTS = {
    "receipt": _l("We received your request %(reference)s"),
    "email_receipt": _l("We received your email: request %(reference)s"),
    "reply": _l("New reply to your request %(reference)s"),
    "request_info": _l("We need more information for your request %(reference)s"),
    "resolved": _l("Your request %(reference)s is resolved"),
    "final_response": _l("Our decision on your request %(reference)s"),
}

RECEIPTS = ("receipt", "email_receipt")  # these state the deadlines
# The desk sends these by itself (RFC 3834); the others carry what a member of staff wrote.
AUTOMATIC = {"receipt": Automatic.GENERATED, "email_receipt": Automatic.REPLIED}


def compose(
    template: str, *, ticket: Ticket, message: str, link: str, clocks: list[Clock] | None = None
) -> tuple[str, str]:
    """Subject and plain-text body of ``template`` in the customer's language. A receipt
    states the deadlines of ``clocks`` (read from the ticket when not given)."""
    with force_locale(ticket.requester.locale):  # the deadlines' labels too
        deadlines = []
        if template in RECEIPTS:
            deadlines = public_deadlines(clocks if clocks is not None else clocks_of("ticket", ticket.id))
        subject = str(SUBJECTS[template] % {"reference": ticket.reference})
        body = render_template(
            f"emails/{template}.txt",
            ticket=ticket,
            customer=ticket.requester,
            message=message,
            link=link,
            tenant=current_tenant(),
            deadlines=deadlines,
        )
    return subject, body
