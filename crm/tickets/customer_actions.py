"""What the requester does on their tracking page: reply (with files, within what one
ticket may hold), withdraw, or say they are not satisfied with the resolution."""

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from crm.audit.service import record
from crm.errors import Conflict, DomainError
from crm.extensions import db
from crm.files.models import Attachment
from crm.notify import staff as staff_notices
from crm.sla import clocks
from crm.tickets.actors import customer_actor
from crm.tickets.input_checks import MAX_DESCRIPTION, Upload, check_text, check_uploads
from crm.tickets.models import EntryKind, Status, ThreadEntry, Ticket
from crm.tickets.status import set_status
from crm.tickets.thread import add_message

# All the files a customer may add to one ticket, with the form and every reply.
CUSTOMER_FILES_PER_TICKET = 20
CUSTOMER_BYTES_PER_TICKET = 50 * 2**20


def customer_room(ticket: Ticket) -> tuple[int, int]:
    """How many more files, and bytes, the customer may add to ``ticket``: what a tracking
    link (or a reply address) may add to one ticket, in all, so that a leaked one cannot
    fill the disk. No real case needs more."""
    count, size = db.session.execute(
        select(func.count(Attachment.id), func.coalesce(func.sum(Attachment.size), 0))
        .join(ThreadEntry, ThreadEntry.id == Attachment.entry_id)
        .where(Attachment.ticket_id == ticket.id, ThreadEntry.author_kind == "customer")
    ).one()
    return CUSTOMER_FILES_PER_TICKET - count, CUSTOMER_BYTES_PER_TICKET - size


def _check_customer_quota(ticket: Ticket, uploads: list[Upload]) -> None:
    if not uploads:
        return
    files_left, bytes_left = customer_room(ticket)
    if len(uploads) > files_left or sum(len(upload.content) for upload in uploads) > bytes_left:
        raise DomainError(
            _l(
                "This request already holds as many files as it can take (%(n)d files or %(mb)d MB). "
                "Send further evidence by email or post.",
                n=CUSTOMER_FILES_PER_TICKET,
                mb=CUSTOMER_BYTES_PER_TICKET // 2**20,
            ),
            "attachments",
        )


def customer_reply(
    ticket: Ticket, body: str, *, ip: str | None, uploads: list[Upload] = (), subject: str | None = None
) -> ThreadEntry:
    """The customer answers on the tracking page (or by email, with its ``subject``); a
    waiting ticket is open again."""
    if not ticket.is_open:
        raise Conflict(_l("This request is closed. Submit a new request if you need more help."), "body")
    body = check_text(body, "body", MAX_DESCRIPTION, required=True)
    actor = customer_actor(ticket, ip)
    check_uploads(list(uploads))
    _check_customer_quota(ticket, list(uploads))
    entry = add_message(
        ticket, EntryKind.INBOUND_MESSAGE, body, actor=actor, uploads=uploads, subject=subject
    )
    if ticket.status == Status.AWAITING_CUSTOMER:
        set_status(ticket, Status.OPEN, actor, author_kind="customer")
    clocks.on_customer_message(ticket, actor=actor)
    staff_notices.tell_assignee(ticket, staff_notices.TicketEvent.CUSTOMER_REPLIED)
    return entry


def withdraw_by_customer(ticket: Ticket, *, ip: str | None) -> None:
    if not ticket.is_open:
        raise Conflict(_l("Only an open request can be withdrawn."), "status")
    set_status(ticket, Status.WITHDRAWN, customer_actor(ticket, ip), author_kind="customer")


def not_satisfied(ticket: Ticket, body: str, *, ip: str | None) -> None:
    """The customer rejects the resolution: the ticket reopens, flagged for a manager."""
    if ticket.status != Status.RESOLVED:
        raise Conflict(_l("Only a resolved request can be reopened."), "status")
    body = check_text(body, "body", MAX_DESCRIPTION, required=False)
    actor = customer_actor(ticket, ip)
    if body:
        add_message(ticket, EntryKind.INBOUND_MESSAGE, body, actor=actor)
    set_status(ticket, Status.OPEN, actor, author_kind="customer")
    if body:
        clocks.on_customer_message(ticket, actor=actor)
    ticket.needs_manager = True
    record(
        "ticket.escalated_to_manager",
        "ticket",
        ticket.id,
        actor=actor,
        data={"why": "customer_not_satisfied"},
    )
    staff_notices.tell_assignee(ticket, staff_notices.TicketEvent.NOT_SATISFIED)
