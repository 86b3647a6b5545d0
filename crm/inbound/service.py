"""Inbound email into the desk: one parser (crm.inbound.parse), fed by the MTA's pipe
(``flask mail deliver``).

A reply reaches its ticket by the plus-address the desk's mail gives as Reply-To
(crm.inbound.addresses: signed, so nobody writes into a ticket by guessing), else by its
In-Reply-To or References naming a Message-ID the desk sent. It becomes the customer's
message on the ticket, as a reply on the tracking page would (a waiting ticket opens
again, the response clocks are met, the assignee told). Any other email, or a reply to a
closed ticket, becomes a new ticket on the email channel. Auto-replies and bounces make
nothing, so two desks never answer each other in a loop. Every email kept is attached
whole to its message as ``original.eml``, the evidence of what was received; its files
are checked by their bytes like the form's, and those refused are named in the message.
"""

import hashlib
import hmac
import re
from dataclasses import dataclass

from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import select

from crm.audit.chain import digest
from crm.audit.service import Actor, record
from crm.errors import DomainError
from crm.extensions import db
from crm.files.sniff import detect
from crm.inbound.addresses import TOKEN_RE, signature
from crm.inbound.models import InboundMessage
from crm.inbound.parse import Parsed, parse
from crm.mail_addresses import check_email
from crm.notify.models import OutboxMessage
from crm.tickets import intake
from crm.tickets.customer_actions import customer_reply, customer_room
from crm.tickets.input_checks import MAX_DESCRIPTION, MAX_FILE_BYTES, MAX_FILES
from crm.tickets.lookup import merged_into, ticket_by_number
from crm.tickets.models import Ticket
from crm.tickets.service import Upload
from tenants import current_tenant

CJK = re.compile(r"[\u4e00-\u9fff]")


def _answered_ticket(parsed: Parsed) -> Ticket | None:
    for address in parsed.recipients:
        found = TOKEN_RE.search(address)
        if found:
            ticket = ticket_by_number(int(found.group(1)))
            if ticket is not None and hmac.compare_digest(
                signature(ticket.tenant_id, ticket.id), found.group(2)
            ):
                return ticket
    if parsed.answers:
        # Only the desk's mail to the customer: staff answering a notice are not them.
        ticket_id = db.session.scalar(
            select(OutboxMessage.ticket_id)
            .join(Ticket, Ticket.id == OutboxMessage.ticket_id)
            .where(
                OutboxMessage.message_id.in_(parsed.answers[-20:]),
                OutboxMessage.to_address == Ticket.requester_email,
            )
            .limit(1)
        )
        if ticket_id is not None:
            return db.session.get(Ticket, ticket_id)
    return None


@dataclass(frozen=True)
class Delivery:
    outcome: str  # "filed" (on an existing ticket), "new" (a new ticket) or "ignored"
    reference: str | None = None
    reason: str | None = None


def _uploads(parsed: Parsed, raw: bytes) -> tuple[list[Upload], list[str]]:
    """The files to keep (the whole message first, as evidence) and the names refused."""
    kept, refused = [], []
    if detect(raw) == "message/rfc822" and len(raw) <= MAX_FILE_BYTES:
        kept.append(Upload("original.eml", raw))
    for name, content in parsed.attachments:
        if len(kept) < MAX_FILES and content and len(content) <= MAX_FILE_BYTES and detect(content):
            kept.append(Upload(name[:200], content))
        else:
            refused.append(name[:200])
    return kept, refused


def deliver(raw: bytes) -> Delivery:
    """File one inbound email for the tenant in context; the caller commits. What the desk
    adds to the message (files refused, a follow-up) is in the tenant's language."""
    with force_locale(current_tenant().locale or "zh_CN"):
        return _deliver(raw)


def _deliver(raw: bytes) -> Delivery:
    try:
        parsed = parse(raw)
    except (IndexError, ValueError, LookupError):  # headers the standard library cannot read
        parsed = None
    unusable = "unreadable message" if parsed is None else parsed.machine or _no_sender(parsed)
    if unusable:
        record(
            "email.inbound_ignored",
            "email",
            None,
            actor=Actor.system(),
            data={"reason": unusable, "from_sha256": digest(parsed.sender_address) if parsed else None},
        )
        return Delivery("ignored", reason=unusable)
    key = digest(parsed.message_id) if parsed.message_id else hashlib.sha256(raw).hexdigest()
    earlier = db.session.get(InboundMessage, (current_tenant().id, key))
    if earlier is not None:
        return Delivery("ignored", earlier.reference, reason="received before")
    delivery = _file(parsed, raw)
    db.session.add(InboundMessage(message_key=key, outcome=delivery.outcome, reference=delivery.reference))
    return delivery


def _no_sender(parsed: Parsed) -> str | None:
    """Why nobody could be answered: mail without a usable From address files nothing
    (exiting non-zero would have the MTA retry it for days)."""
    try:
        check_email(parsed.sender_address)
    except DomainError:
        return "no valid sender address"
    return None


def _within_room(uploads: list[Upload], files_left: int, bytes_left: int) -> tuple[list[Upload], list[str]]:
    """The uploads a ticket can still take, in order (the whole message first), and the
    names of the others."""
    kept, over = [], []
    for upload in uploads:
        if len(kept) < files_left and len(upload.content) <= bytes_left:
            kept.append(upload)
            bytes_left -= len(upload.content)
        else:
            over.append(upload.filename or "?")
    return kept, over


def _follow_up_note(ticket: Ticket) -> str:
    """The first line of a new ticket opened by a reply to a closed one: which one, and
    where a merged one went, so staff can file it there."""
    survivor = merged_into(ticket)
    if survivor is not None:
        return _(
            "A follow-up to %(reference)s, which was merged into %(survivor)s.",
            reference=ticket.reference,
            survivor=survivor.reference,
        )
    return _("A follow-up to %(reference)s, which is closed.", reference=ticket.reference)


def _file(parsed: Parsed, raw: bytes) -> Delivery:
    ticket = _answered_ticket(parsed)
    filed_on = ticket if ticket is not None and ticket.is_open else None
    uploads, refused = _uploads(parsed, raw)
    body = parsed.trimmed or _("(The email had no text.)")
    if refused:
        body += "\n\n" + _("Not kept, not a type of file we accept: %(names)s", names=", ".join(refused))
    if filed_on is not None:
        # A reply is never refused for its files: the text is filed, the files beyond
        # what the ticket may hold are named (else the MTA would retry it, then bounce it).
        uploads, over = _within_room(uploads, *customer_room(filed_on))
        if over:
            body += "\n\n" + _(
                "Not kept, the request already holds as many files as it can take: %(names)s",
                names=", ".join(over),
            )
    body = body[:MAX_DESCRIPTION]  # a long email is kept whole in original.eml
    if filed_on is not None:
        customer_reply(filed_on, body, ip=None, uploads=uploads, subject=parsed.subject)
        return Delivery("filed", filed_on.reference)
    if ticket is not None:
        body = _follow_up_note(ticket) + "\n\n" + body
    locale = "zh_CN" if CJK.search(parsed.text + parsed.subject) else "en"
    customer = intake.CustomerDetails(
        name=(parsed.sender_name or parsed.sender_address.partition("@")[0])[:200],
        email=parsed.sender_address,
        locale=locale,
    )
    subject = parsed.subject or _("(no subject)")
    created = intake.receive_email(customer=customer, description=f"{subject}\n\n{body}", uploads=uploads)
    return Delivery("new", created.reference)
