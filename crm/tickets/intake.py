"""How tickets come in: refund requests from the hosted form, and the tickets staff open
for phone, email and regulator referrals; each gets its number, customer, clocks and first message."""

import secrets
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from flask_babel import lazy_gettext as _l
from sqlalchemy import bindparam, func, select, update

from crm.audit.chain import digest, format_instant
from crm.audit.service import Actor, record
from crm.auth.models import User
from crm.columns import utcnow
from crm.customers import service as customers
from crm.errors import DomainError
from crm.extensions import db, insert_or_ignore, pending_in_transaction
from crm.mail_addresses import check_email
from crm.policies import service as policies
from crm.provisioning.models import TenantSettings
from crm.provisioning.service import tenant_settings
from crm.sla import clocks
from crm.sla.models import Clock
from crm.tickets import search
from crm.tickets.actors import staff_actor
from crm.tickets.input_checks import (
    MAX_DESCRIPTION,
    Upload,
    check_claimed_amount,
    check_currency,
    check_purchase_date,
    check_text,
    check_uploads,
)
from crm.tickets.links import mint_tracking_link
from crm.tickets.models import Channel, Kind, Priority, Reason, Status, SubmissionUse, Ticket
from crm.tickets.thread import (
    RECEIVED_KEY,
    author_kind_of,
    message_added,
    notify_customer,
    write_first_message,
)
from tenants import current_tenant, current_tenant_id

# An acknowledgement for at most this many emails an hour from one address: beyond it
# the sender is likely a machine that answers every email (a loop), or a forged
# address being flooded (backscatter); the tickets are still opened.
EMAIL_RECEIPTS_PER_HOUR = 3


@dataclass(frozen=True)
class CustomerDetails:
    name: str
    phone: str | None = None
    email: str | None = None
    account_ref: str | None = None
    locale: str = "zh_CN"


@dataclass(frozen=True)
class RefundRequest:
    """What the hosted form collects, already parsed by its form."""

    customer: CustomerDetails
    reason: str
    description: str
    purchase_date: date | None = None
    amount: Decimal | None = None
    currency: str | None = None
    uploads: list[Upload] = field(default_factory=list)


@dataclass(frozen=True)
class Submission:
    ticket: Ticket
    tracking_token: str | None  # None for a repeated submit: the first one holds the link
    repeated: bool = False


def new_nonce() -> str:
    return secrets.token_hex(16)


def checked_requester(details: CustomerDetails, *, phone_required: bool) -> CustomerDetails:
    """The requester's details as they will be kept: trimmed, the phone in E.164, the
    email checked. Without a phone, an email is required."""
    name = check_text(details.name, "name", 200, required=True)
    phone = None
    if details.phone or phone_required:
        phone = customers.normalise_phone(details.phone or "", tenant_settings().country)
    email = check_email(details.email) if details.email else None
    if not phone and not email:
        raise DomainError(_l("Give the customer's phone number or email."), "phone")
    account_ref = check_text(details.account_ref, "account_ref", 100, required=False) or None
    return CustomerDetails(
        name=name, phone=phone, email=email, account_ref=account_ref, locale=details.locale
    )


def _link_customer(requester: CustomerDetails, *, actor: Actor) -> int:
    """The id of the customer record the request is filed under."""
    return customers.link_customer(
        name=requester.name,
        phone=requester.phone,
        email=requester.email,
        account_ref=requester.account_ref,
        locale=requester.locale,
        actor=actor,
    )


_SETTINGS = TenantSettings.__table__.c
_TAKE_NUMBER = (
    update(TenantSettings.__table__)
    .where(_SETTINGS.tenant_id == bindparam("of_tenant"))
    .values(next_ticket_number=_SETTINGS.next_ticket_number + 1)
    .returning(_SETTINGS.next_ticket_number, _SETTINGS.ticket_prefix)
)


def _allocate_number() -> tuple[int, str]:
    """The tenant's next ticket number; the settings row's lock serialises it. A Core
    statement on the session's connection, scoped to the tenant here."""
    number, prefix = db.session.connection().execute(_TAKE_NUMBER, {"of_tenant": current_tenant_id()}).one()
    return number - 1, f"{prefix}-{number - 1}"


def _create_ticket(
    *,
    customer_id: int,
    requester: CustomerDetails,
    kind: Kind,
    channel: Channel,
    priority: Priority,
    reason: str | None,
    purchase_date: date | None,
    amount_minor: int | None,
    currency: str,
    actor: Actor,
    description: str,
    author: User | None = None,
    uploads: list[Upload] = (),
    **message_audit,
) -> tuple[Ticket, list[Clock]]:
    """The ticket, the clocks it started and its first message (``description``, with
    ``uploads``); ``requester`` is checked and normalised. What needs no number is done
    before the tenant's counter is taken: its row stays locked until the commit, and
    other submissions wait."""
    now = utcnow()
    ticket = Ticket(
        kind=kind,
        channel=channel,
        priority=priority,
        status=Status.NEW,
        reason=reason,
        customer_id=customer_id,
        requester_name=requester.name,
        requester_phone=requester.phone,
        requester_email=requester.email,
        requester_locale=requester.locale,
        account_ref=requester.account_ref,
        purchase_date=purchase_date,
        amount_minor=amount_minor,
        currency=currency,
        policy_version_id=policies.in_force_id(),
        created_at=now,
        updated_at=now,
    )
    planned = clocks.plan_ticket_clocks(ticket)  # sets its deadlines before the INSERT
    search.index_on_insert(db.session(), ticket, description)
    ticket.number, ticket.reference = _allocate_number()
    db.session.add(ticket)
    db.session.flush()
    pending_in_transaction(RECEIVED_KEY).append(ticket.id)
    message = write_first_message(ticket, description, author_kind=author_kind_of(actor), author=author)
    clocks.start_ticket_clocks(ticket, planned, actor=actor)
    record(
        "ticket.created",
        "ticket",
        ticket.id,
        actor=actor,
        data={
            "reference": ticket.reference,
            "created_at": format_instant(now),
            "kind": kind,
            "channel": channel,
            "priority": priority,
            "reason": reason,
            "customer_id": customer_id,
            "requester": {
                "name_sha256": digest(requester.name),
                "phone_sha256": digest(requester.phone) if requester.phone else None,
                "email_sha256": digest(requester.email) if requester.email else None,
                "account_sha256": digest(requester.account_ref) if requester.account_ref else None,
            },
            "amount_minor": amount_minor,
            "currency": currency,
            "purchase_date": purchase_date.isoformat() if purchase_date else None,
            "policy_version_id": ticket.policy_version_id,
        },
    )
    message_added(ticket, message, actor=actor, uploads=uploads, **message_audit)
    return ticket, planned


class RepeatedSubmission(Exception):
    """The form was submitted before with this token (a double click, a resent form):
    roll back what this submit wrote, then ask ``repeated_submission`` for the ticket
    the first one made."""


def repeated_submission(nonce: str) -> Submission:
    """The ticket an earlier submit of this token made (the repeat is counted)."""
    used = db.session.scalars(select(SubmissionUse).where(SubmissionUse.nonce == nonce)).one()
    used.attempts += 1
    ticket = db.session.scalars(select(Ticket).where(Ticket.id == used.ticket_id)).one()
    return Submission(ticket, None, repeated=True)


def submit_refund_request(
    request: RefundRequest, *, nonce: str, ip: str | None, via: Actor | None = None
) -> Submission:
    """The hosted form's submit. A repeated ``nonce`` (a double click, a resent form)
    raises RepeatedSubmission: the caller rolls back and asks ``repeated_submission``
    for the ticket the first submit made. ``via``: the API key that sent it (channel
    ``api``); the customer otherwise (the form)."""
    requester = checked_requester(request.customer, phone_required=True)
    description = check_text(request.description, "description", MAX_DESCRIPTION, required=True)
    try:
        reason = Reason(request.reason)
    except ValueError:
        raise DomainError(_l("Choose a reason."), "reason") from None
    check_purchase_date(request.purchase_date)
    currency = check_currency(request.currency)
    amount_minor = check_claimed_amount(request.amount, currency)
    check_uploads(request.uploads)
    customer_id = _link_customer(requester, actor=Actor.system())
    actor = via or Actor("customer", str(customer_id), f"customer:{customer_id}", ip)
    ticket, started = _create_ticket(
        customer_id=customer_id,
        requester=requester,
        kind=Kind.REFUND,
        channel=Channel.API if via else Channel.WEB_FORM,
        priority=Priority.NORMAL,
        reason=reason,
        purchase_date=request.purchase_date,
        amount_minor=amount_minor,
        currency=currency,
        actor=actor,
        description=description,
        uploads=request.uploads,
    )
    # The token is claimed with the ticket it made, in one INSERT. A submit of the same
    # form in flight at once waits here (or already at the tenant's counter) for the
    # first one's commit, then finds the token taken, as a later one does.
    claim = {"nonce": nonce, "used_at": utcnow(), "attempts": 1, "ticket_id": ticket.id}
    if not insert_or_ignore(SubmissionUse, claim):
        raise RepeatedSubmission(nonce)
    token = mint_tracking_link(ticket)
    notify_customer(ticket, "receipt", actor=actor, ticket_clocks=started)
    return Submission(ticket, token)


def open_ticket(
    *,
    customer: CustomerDetails,
    kind: str,
    channel: str,
    priority: str,
    description: str,
    user: User,
    ip: str | None,
    reason: str | None = None,
) -> Ticket:
    """A ticket staff open for a request that came by phone, email or a regulator."""
    try:
        kind, channel, priority = Kind(kind), Channel(channel), Priority(priority)
        reason = Reason(reason) if reason else None
    except ValueError:
        raise DomainError(_l("Choose a kind, channel, priority and reason from the lists."), "kind") from None
    if channel not in (Channel.PHONE, Channel.EMAIL, Channel.REGULATOR_REFERRAL):
        raise DomainError(_l("Staff open tickets for phone, email and regulator referrals."), "channel")
    requester = checked_requester(customer, phone_required=False)
    description = check_text(description, "description", MAX_DESCRIPTION, required=True)
    actor = staff_actor(user, ip)
    ticket, _clocks = _create_ticket(
        customer_id=_link_customer(requester, actor=actor),
        requester=requester,
        kind=kind,
        channel=channel,
        priority=priority,
        reason=reason,
        purchase_date=None,
        amount_minor=None,
        currency=current_tenant().currency,
        actor=actor,
        description=description,
        author=user,
        recorded_by_staff=True,
    )
    return ticket


def receive_email(*, customer: CustomerDetails, description: str, uploads: list[Upload]) -> Ticket:
    """A ticket for an email that answers none of the desk's (crm.inbound): an inquiry on
    the email channel, from the address it came from."""
    requester = checked_requester(customer, phone_required=False)
    description = check_text(description[:MAX_DESCRIPTION], "description", MAX_DESCRIPTION, required=True)
    check_uploads(list(uploads))
    customer_id = _link_customer(requester, actor=Actor.system())
    actor = Actor("customer", str(customer_id), f"customer:{customer_id}", None)
    ticket, started = _create_ticket(
        customer_id=customer_id,
        requester=requester,
        kind=Kind.INQUIRY,
        channel=Channel.EMAIL,
        priority=Priority.NORMAL,
        reason=None,
        purchase_date=None,
        amount_minor=None,
        currency=current_tenant().currency,
        actor=actor,
        description=description,
        uploads=uploads,
    )
    if _emails_opened_lately(requester.email) <= EMAIL_RECEIPTS_PER_HOUR:
        notify_customer(ticket, "email_receipt", actor=actor, ticket_clocks=started)
    return ticket


def _emails_opened_lately(address: str) -> int:
    """Tickets the address opened by email in the last hour, this one included."""
    return db.session.scalar(
        select(func.count()).where(
            Ticket.requester_email == address,
            Ticket.channel == Channel.EMAIL,
            Ticket.created_at > utcnow() - timedelta(hours=1),
        )
    )
