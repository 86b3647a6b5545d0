"""A customer's personal data erased at their request: who they were goes, what happened
stays, and the audit chain still verifies.

The audit trail never held the personal data (its events carry ids and SHA-256 digests,
docs/audit-format.md), so nothing in it changes. What goes is in the ordinary tables:
the record's and each request's contact details, what was said on each ticket
(messages, notes, call notes, the emails sent), its files and call recordings, its
tracking links, and the leads of the same person. What stays: the tickets' references,
kinds, statuses, amounts, deadlines and decisions, the payouts and their receipts (a
financial record the provider must keep), and the do-not-contact list (honouring the
person's wish not to be called needs their number).
"""

from dataclasses import dataclass

from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, select

from crm.access import Role
from crm.audit.service import Actor, record
from crm.auth.models import User
from crm.calls.models import CallRecord
from crm.columns import utcnow
from crm.customers.models import Customer
from crm.customers.service import requests_of
from crm.errors import DomainError
from crm.extensions import db
from crm.files import storage
from crm.files.models import Attachment
from crm.leads import pipeline
from crm.notify.models import OutboxMessage, OutboxStatus
from crm.refunds.models import Payout
from crm.tickets import search
from crm.tickets.models import OPEN_STATES, ThreadEntry, Ticket, TrackingLink

ERASED_NAME = "—"
# The details of an entry that name the person: a call's number, an email's address
# and subject, an email's subject (a status change, an assignment or a merge names nobody).
PERSONAL_DETAILS = {
    "call_log": ("number",),
    "outbound_email": ("to", "subject"),
    "inbound_message": ("subject",),
}
# How the person asked; recorded with the erasure.
REQUEST_CHANNELS = ("email", "phone", "letter", "in_person", "web_form")


@dataclass(frozen=True)
class Erasure:
    tickets: int
    leads: int
    files: int
    emails: int


def records_of(customer: Customer) -> list[Customer]:
    """The record and every record merged into it, however many steps back."""
    found, frontier = [customer], [customer.id]
    while frontier:
        merged = list(db.session.scalars(select(Customer).where(Customer.merged_into_id.in_(frontier))))
        found += merged
        frontier = [record.id for record in merged]
    return found


def _erase_ticket(ticket: Ticket) -> tuple[int, int]:
    """The ticket's personal data; (files removed, emails blanked)."""
    ticket.requester_name, ticket.requester_phone, ticket.requester_email = ERASED_NAME, None, None
    ticket.account_ref = None
    for entry in db.session.scalars(select(ThreadEntry).where(ThreadEntry.ticket_id == ticket.id)):
        if entry.kind == "status_change" or (
            entry.kind == "system_event" and "received_at" not in entry.details
        ):
            continue  # the desk's own words (a merge, a payout, an assignment) name nobody
        personal = PERSONAL_DETAILS.get(entry.kind, ())
        kept = {key: value for key, value in entry.details.items() if key not in personal}
        entry.body, entry.details = "", {**kept, "erased": True}
    receipts = select(Payout.receipt_id).where(Payout.receipt_id.is_not(None))
    files = list(
        db.session.scalars(
            select(Attachment).where(Attachment.ticket_id == ticket.id, Attachment.id.not_in(receipts))
        )
    )
    for file in files:
        storage.forget(file.tenant_id, file.sha256)
        db.session.delete(file)
    for call in db.session.scalars(select(CallRecord).where(CallRecord.ticket_id == ticket.id)):
        if call.recording_sha256:
            storage.forget(call.tenant_id, call.recording_sha256)
        call.from_number = call.to_number = call.note = ""
        for column in ("state", "sha256", "url", "size", "type", "name", "error"):
            setattr(call, f"recording_{column}", None)
    emails = list(db.session.scalars(select(OutboxMessage).where(OutboxMessage.ticket_id == ticket.id)))
    for email in emails:
        email.to_address, email.subject, email.body = ERASED_NAME, "", ""
        if email.status != OutboxStatus.SENT:
            email.status, email.last_error = OutboxStatus.FAILED, "erased at the customer's request"
    db.session.execute(delete(TrackingLink).where(TrackingLink.ticket_id == ticket.id))
    return len(files), len(emails)


def erase_customer(customer: Customer, *, channel: str, user: User, actor: Actor) -> Erasure:
    """Erase the person's details on their request (a manager's or an admin's decision).
    Refused while a request of theirs is still open: its answer needs their details."""
    if user.role not in (Role.MANAGER, Role.ADMIN):
        raise DomainError(_l("Only a manager or an admin can erase a customer's personal data."))
    if channel not in REQUEST_CHANNELS:
        raise DomainError(_l("Say how the customer asked to be erased."), "channel")
    if customer.erased_at is not None:
        raise DomainError(_l("This customer's personal data has already been erased."))
    records = records_of(customer)
    tickets, leads = [], []
    for each in records:
        found_tickets, found_leads = requests_of(each)
        tickets += found_tickets
        leads += [lead for lead in found_leads if lead.erased_at is None and lead not in leads]
    still_open = sorted(ticket.reference for ticket in tickets if ticket.status in OPEN_STATES)
    if still_open:
        raise DomainError(
            _l(
                "Still open: %(tickets)s. Resolve or close it first: its answer needs the details.",
                tickets=", ".join(still_open),
            )
        )
    files = emails = 0
    for ticket in tickets:
        removed, blanked = _erase_ticket(ticket)
        files, emails = files + removed, emails + blanked
    for lead in leads:
        pipeline.erase_details(lead, actor=actor)
    now = utcnow()
    for each in records:
        each.name, each.phone, each.email, each.account_ref = ERASED_NAME, None, None, None
        each.erased_at = now
    db.session.flush()
    search.reindex(db.session, [ticket.id for ticket in tickets])
    erasure = Erasure(len(tickets), len(leads), files, emails)
    record(
        "customer.erased",
        "customer",
        customer.id,
        actor=actor,
        data={
            "asked_by": channel,
            "customer_ids": [each.id for each in records],
            "ticket_ids": [ticket.id for ticket in tickets],
            "lead_ids": [lead.id for lead in leads],
            "files_removed": files,
            "emails_blanked": emails,
        },
    )
    return erasure
