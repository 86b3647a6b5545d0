"""Ticket operations: the only code that changes a ticket. Each one changes rows, adds
the thread entry a person will read, and queues its audit event; the caller commits."""

import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation

from babel.numbers import get_currency_precision
from flask_babel import lazy_gettext as _l
from sqlalchemy import event, func, select, update
from sqlalchemy.orm import Session

from crm.access import PERMISSIONS
from crm.audit.chain import digest
from crm.audit.service import Actor, record
from crm.auth.models import User
from crm.auth.service import check_email
from crm.columns import utcnow
from crm.customers import service as customers
from crm.errors import Conflict, DomainError, NotFound
from crm.extensions import db, insert_or_ignore, pending_in_transaction
from crm.files.models import Attachment
from crm.files.storage import RefusedFile, store
from crm.money import format_money
from crm.notify import service as notify
from crm.notify import staff as staff_notices
from crm.notify.models import TRACKING_LINK_SLOT
from crm.policies import service as policies
from crm.provisioning.models import AgentDisplay, TenantSettings
from crm.provisioning.service import accepted_currencies, tenant_settings
from crm.refunds import ledger
from crm.sla import clocks
from crm.sla.models import Clock
from crm.tickets import emails, resolution
from crm.tickets.labels import STATUS_LABELS
from crm.tickets.links import mint_tracking_link, token_digest
from crm.tickets.models import (
    TRANSITIONS,
    Channel,
    EntryKind,
    Kind,
    Priority,
    Reason,
    Status,
    SubmissionUse,
    ThreadEntry,
    Ticket,
    TrackingLink,
)
from tenants import current_tenant, current_tenant_id

# Tickets received in the current transaction: their entries need no "last activity" UPDATE.
RECEIVED_KEY = "tickets_received"
MAX_FILES = 5
MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_DESCRIPTION = 20_000
# How long after it came in a request can still be logged against its true time.
MAX_LATE_LOGGING_DAYS = 90
# All the files a customer may add to one ticket, with the form and every reply.
CUSTOMER_FILES_PER_TICKET = 20
CUSTOMER_BYTES_PER_TICKET = 50 * 2**20
# How far back a purchase may be claimed on the form: the three-year limitation period
# for civil claims in China (Civil Code art. 188), plus a year's margin for late payments.
OLDEST_PURCHASE_DAYS = 4 * 365


@dataclass(frozen=True)
class Upload:
    """A file as received: its claimed name and its bytes (the name decides nothing)."""

    filename: str | None
    content: bytes


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


def customer_actor(ticket: Ticket, ip: str | None) -> Actor:
    """The requester of ``ticket``, acting through their tracking link or the form."""
    return Actor("customer", str(ticket.customer_id), f"customer:{ticket.customer_id}", ip)


def staff_actor(user: User, ip: str | None) -> Actor:
    return Actor("user", str(user.id), user.email, ip)


# --- reading ---------------------------------------------------------------------------


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


def thread(ticket: Ticket, *, public_only: bool) -> list[ThreadEntry]:
    query = select(ThreadEntry).where(ThreadEntry.ticket_id == ticket.id).order_by(ThreadEntry.id)
    entries = list(db.session.scalars(query))
    return [entry for entry in entries if entry.is_public] if public_only else entries


def attachments_by_entry(ticket: Ticket) -> dict[int, list[Attachment]]:
    by_entry: dict[int, list[Attachment]] = {}
    query = select(Attachment).where(Attachment.ticket_id == ticket.id).order_by(Attachment.id)
    for attachment in db.session.scalars(query):
        by_entry.setdefault(attachment.entry_id, []).append(attachment)
    return by_entry


def attachment_of_ticket(
    ticket: Ticket, attachment_id: int, *, public_only: bool = False
) -> Attachment | None:
    """An attachment of this ticket; with ``public_only``, only one the customer can see."""
    query = select(Attachment).where(Attachment.id == attachment_id, Attachment.ticket_id == ticket.id)
    attachment = db.session.scalars(query).one_or_none()
    if attachment is None or not public_only:
        return attachment
    entry = db.session.scalars(select(ThreadEntry).where(ThreadEntry.id == attachment.entry_id)).one()
    return attachment if entry.is_public else None


def public_author_names(entries: list[ThreadEntry]) -> dict[int, str]:
    """What the customer sees of who answered: a first name or the team's name."""
    settings = tenant_settings()
    ids = {entry.author_user_id for entry in entries if entry.author_user_id}
    if not ids:
        return {}
    if settings.agent_display == AgentDisplay.TEAM:
        return dict.fromkeys(ids, settings.team_name)
    users = db.session.scalars(select(User).where(User.id.in_(ids)))
    return {user.id: (user.display_name.split() or [settings.team_name])[0] for user in users}


def list_assignable_users() -> list[User]:
    """Who a ticket can be given to: active staff whose role works tickets (not auditors)."""
    query = (
        select(User)
        .where(User.active.is_(True), User.role.in_(sorted(PERMISSIONS["tickets.work"])))
        .order_by(User.display_name, User.email)
    )
    return [user for user in db.session.scalars(query) if user.is_active]


def new_nonce() -> str:
    return secrets.token_hex(16)


def customer_tickets(customer_id: int, *, excluding: int | None = None) -> list[Ticket]:
    query = (
        select(Ticket).where(Ticket.customer_id == customer_id).order_by(Ticket.created_at.desc()).limit(50)
    )
    return [ticket for ticket in db.session.scalars(query) if ticket.id != excluding]


# --- parsing what people typed -----------------------------------------------------------


def to_minor_units(amount: Decimal | str | None, currency: str) -> int | None:
    """``199.00`` CNY -> 19900; refuses negatives and more decimals than the currency has."""
    if amount is None or amount == "":
        return None
    try:
        value = Decimal(str(amount).strip())
    except InvalidOperation:
        raise DomainError(_l("Enter an amount such as 199.00."), "amount") from None
    if not value.is_finite():
        raise DomainError(_l("Enter an amount such as 199.00."), "amount")
    if value < 0:
        raise DomainError(_l("The amount cannot be negative."), "amount")
    if value.is_zero():
        return 0
    # Counted in integers from the digits as written: Decimal arithmetic would overflow its
    # context on 1E+999999999 and round 1E-999999999 to zero.
    digits = get_currency_precision(currency)
    if value.adjusted() > 15:
        raise DomainError(_l("The amount is too large."), "amount")
    _, coefficient, exponent = value.as_tuple()
    shift = exponent + digits
    if shift < 0 and any(coefficient[shift:]):
        raise DomainError(_l("Use at most %(n)d decimal places.", n=digits), "amount")
    whole = int("".join(map(str, coefficient)))
    minor = whole * 10**shift if shift >= 0 else whole // 10**-shift
    if minor > 10**15:
        raise DomainError(_l("The amount is too large."), "amount")
    return minor


def check_currency(code: str | None) -> str:
    """The currency of a claim: one the tenant accepts (by default only its own)."""
    accepted = accepted_currencies()
    if not code:
        return accepted[0]
    if code not in accepted:
        raise DomainError(_l("We take refund requests in %(codes)s.", codes=", ".join(accepted)), "currency")
    return code


def check_claimed_amount(amount: Decimal | str | None, currency: str) -> int | None:
    """The amount a customer asks back, in minor units: optional, but never zero."""
    minor = to_minor_units(amount, currency)
    if minor == 0:
        raise DomainError(
            _l("Enter the amount you ask back, or leave it empty if you do not know it."), "amount"
        )
    return minor


def check_purchase_date(purchase_date: date | None) -> None:
    """A purchase date the desk can act on: not in the future, nor so old that the claim
    is past the limitation period (three years, Civil Code art. 188) plus a margin."""
    if purchase_date is None:
        return
    today = utcnow().date()
    if purchase_date > today + timedelta(days=1):
        raise DomainError(_l("The purchase date cannot be in the future."), "purchase_date")
    if purchase_date < today - timedelta(days=OLDEST_PURCHASE_DAYS):
        raise DomainError(
            _l(
                "A purchase more than %(years)d years ago is too old to claim here. "
                "Check the date, or contact us by phone.",
                years=OLDEST_PURCHASE_DAYS // 365,
            ),
            "purchase_date",
        )


def check_text(value: str | None, field_name: str, limit: int, *, required: bool) -> str:
    value = (value or "").strip()
    if required and not value:
        raise DomainError(_l("This field is required."), field_name)
    if len(value) > limit:
        raise DomainError(_l("Use at most %(n)d characters.", n=limit), field_name)
    return value


def _check_uploads(uploads: list[Upload]) -> None:
    if len(uploads) > MAX_FILES:
        raise DomainError(_l("Attach at most %(n)d files.", n=MAX_FILES), "attachments")
    for upload in uploads:
        if not upload.content:
            raise DomainError(
                _l("%(name)s is empty: attach the file itself.", name=upload.filename or "?"), "attachments"
            )
        if len(upload.content) > MAX_FILE_BYTES:
            raise DomainError(
                _l(
                    "%(name)s is larger than %(mb)d MB.",
                    name=upload.filename or "?",
                    mb=MAX_FILE_BYTES // 2**20,
                ),
                "attachments",
            )


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


# --- the thread --------------------------------------------------------------------------


def _add_entry(
    ticket: Ticket,
    kind: EntryKind,
    *,
    author_kind: str,
    author: User | None = None,
    body: str = "",
    details: dict | None = None,
    flush: bool = True,
) -> ThreadEntry:
    """An entry in the ticket's thread. ``flush=False``: written with the next flush (or
    the commit), for an entry whose id nothing needs at once."""
    entry = ThreadEntry(
        ticket_id=ticket.id,
        kind=kind,
        author_kind=author_kind,
        author_user_id=author.id if author else None,
        body=body,
        details=details or {},
    )
    db.session.add(entry)
    if flush:
        db.session.flush()
    if ticket.id not in db.session.info.get(RECEIVED_KEY, ()):
        ticket.updated_at = utcnow()  # received in this transaction: created_at says it
    return entry


def _attach(ticket: Ticket, entry: ThreadEntry, uploads: list[Upload], actor: Actor) -> list[Attachment]:
    _check_uploads(uploads)
    attached = []
    for upload in uploads:
        try:
            stored = store(ticket.tenant_id, upload.content, upload.filename)
        except RefusedFile:
            raise DomainError(
                _l(
                    "%(name)s is not an accepted file type (PDF, PNG, JPEG, text, email, MP3, WAV or M4A).",
                    name=upload.filename or "?",
                ),
                "attachments",
            ) from None
        attachment = Attachment(
            ticket_id=ticket.id,
            entry_id=entry.id,
            sha256=stored.sha256,
            size=stored.size,
            content_type=stored.content_type,
            filename=stored.filename,
        )
        db.session.add(attachment)
        db.session.flush()
        record(
            "attachment.added",
            "ticket",
            ticket.id,
            actor=actor,
            data={
                "attachment_id": attachment.id,
                "entry_id": entry.id,
                "sha256": stored.sha256,
                "size": stored.size,
                "content_type": stored.content_type,
            },
        )
        attached.append(attachment)
    return attached


MESSAGE_ACTIONS = {
    EntryKind.INBOUND_MESSAGE: "ticket.message_received",
    EntryKind.PUBLIC_REPLY: "ticket.replied",
    EntryKind.INTERNAL_NOTE: "ticket.note_added",
}


def _add_message(
    ticket: Ticket,
    kind: EntryKind,
    body: str,
    *,
    actor: Actor,
    author: User | None = None,
    uploads: list[Upload] = (),
    **audit_data,
) -> ThreadEntry:
    """A written message in the thread, its files, and its audit event (the body as a
    digest): the one way a message is added, whoever writes it."""
    entry = _add_entry(ticket, kind, author_kind=_author_kind(actor), author=author, body=body)
    _message_added(ticket, entry, actor=actor, uploads=uploads, **audit_data)
    return entry


def _author_kind(actor: Actor) -> str:
    return "customer" if actor.kind == "customer" else "staff"


def _message_added(
    ticket: Ticket, entry: ThreadEntry, *, actor: Actor, uploads: list[Upload] = (), **audit_data
) -> None:
    """The audit event of a message just written (its id known), and its files."""
    record(
        MESSAGE_ACTIONS[EntryKind(entry.kind)],
        "ticket",
        ticket.id,
        actor=actor,
        data={"entry_id": entry.id, "body_sha256": digest(entry.body), **audit_data},
    )
    _attach(ticket, entry, list(uploads), actor)


def _set_status(
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
    ticket.status = new
    if new == Status.RESOLVED:
        ticket.resolved_at = utcnow()
    clocks.on_status_change(ticket, old, new, actor=actor)
    _add_entry(
        ticket,
        EntryKind.STATUS_CHANGE,
        author_kind=author_kind,
        author=author,
        details={"from": old, "to": new},
    )
    record("ticket.status_changed", "ticket", ticket.id, actor=actor, data={"before": old, "after": new})


# --- creating tickets --------------------------------------------------------------------


def _allocate_number() -> tuple[int, str]:
    """The tenant's next ticket number; the settings row's lock serialises it. A Core
    statement on the session's connection, scoped to the tenant here."""
    number, prefix = (
        db.session.connection()
        .execute(
            update(TenantSettings.__table__)
            .where(TenantSettings.tenant_id == current_tenant_id())
            .values(next_ticket_number=TenantSettings.next_ticket_number + 1)
            .returning(TenantSettings.next_ticket_number, TenantSettings.ticket_prefix)
        )
        .one()
    )
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
    ``uploads``); ``requester`` is checked and normalised. The clocks and the message
    are written in one flush."""
    number, reference = _allocate_number()
    now = utcnow()
    ticket = Ticket(
        number=number,
        reference=reference,
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
    db.session.add(ticket)
    db.session.flush()
    pending_in_transaction(RECEIVED_KEY).append(ticket.id)
    message = _add_entry(
        ticket,
        EntryKind.INBOUND_MESSAGE,
        author_kind=_author_kind(actor),
        author=author,
        body=description,
        flush=False,
    )
    clocks.start_ticket_clocks(ticket, planned, actor=actor)  # its flush writes the message too
    db.session.flush()  # (a ticket without clocks)
    record(
        "ticket.created",
        "ticket",
        ticket.id,
        actor=actor,
        data={
            "reference": reference,
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
    _message_added(ticket, message, actor=actor, uploads=uploads, **message_audit)
    return ticket, planned


def _repeated_submission(nonce: str) -> Submission | None:
    used = db.session.scalars(select(SubmissionUse).where(SubmissionUse.nonce == nonce)).one_or_none()
    if used is None or used.ticket_id is None:
        return None
    used.attempts += 1
    ticket = db.session.scalars(select(Ticket).where(Ticket.id == used.ticket_id)).one()
    return Submission(ticket, None, repeated=True)


def submit_refund_request(request: RefundRequest, *, nonce: str, ip: str | None) -> Submission:
    """The hosted form's submit. A repeated ``nonce`` (a double click, a resent form)
    returns the ticket the first submit made instead of making another."""
    requester = checked_requester(request.customer, phone_required=True)
    description = check_text(request.description, "description", MAX_DESCRIPTION, required=True)
    try:
        reason = Reason(request.reason)
    except ValueError:
        raise DomainError(_l("Choose a reason."), "reason") from None
    check_purchase_date(request.purchase_date)
    currency = check_currency(request.currency)
    amount_minor = check_claimed_amount(request.amount, currency)
    _check_uploads(request.uploads)
    # Claim the token before creating anything: a concurrent submit of the same form
    # waits here for this one's commit, then finds its ticket.
    if not insert_or_ignore(SubmissionUse, {"nonce": nonce, "used_at": utcnow(), "attempts": 1}):
        return _repeated_submission(nonce)

    customer_id = _link_customer(requester, actor=Actor.system())
    actor = Actor("customer", str(customer_id), f"customer:{customer_id}", ip)
    ticket, started = _create_ticket(
        customer_id=customer_id,
        requester=requester,
        kind=Kind.REFUND,
        channel=Channel.WEB_FORM,
        priority=Priority.NORMAL,
        reason=reason,
        purchase_date=request.purchase_date,
        amount_minor=amount_minor,
        currency=currency,
        actor=actor,
        description=description,
        uploads=request.uploads,
    )
    db.session.connection().execute(
        update(SubmissionUse.__table__)
        .where(SubmissionUse.tenant_id == ticket.tenant_id, SubmissionUse.nonce == nonce)
        .values(ticket_id=ticket.id)
    )
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


def notify_customer(
    ticket: Ticket,
    template: str,
    *,
    actor: Actor,
    message: str = "",
    ticket_clocks: list[Clock] | None = None,
) -> None:
    """Email the requester (if they gave an address for this ticket) in their language,
    with a tracking link minted when it is sent; the email's copy goes into the thread.
    ``ticket_clocks``: its clocks, when the caller has them (a receipt states the deadlines)."""
    requester = ticket.requester
    if not requester.email:
        return
    subject, body = emails.compose(
        template, ticket=ticket, message=message, link=TRACKING_LINK_SLOT, clocks=ticket_clocks
    )
    outbox = notify.queue_email(
        to=requester.email,
        subject=subject,
        body=body,
        locale=requester.locale,
        ticket_id=ticket.id,
        actor=actor,
    )
    _add_entry(
        ticket,
        EntryKind.OUTBOUND_EMAIL,
        author_kind="system",
        body=outbox.readable_body,
        details={"outbox_id": outbox.id, "to": requester.email, "subject": subject},
        flush=False,  # nothing needs its id: written with the next flush or the commit
    )


# --- staff actions -----------------------------------------------------------------------


def _check_open(ticket: Ticket) -> None:
    if not ticket.is_open:
        raise Conflict(
            _l("This ticket is %(status)s; reopen it first.", status=STATUS_LABELS[Status(ticket.status)]),
            "body",
        )


def reply(
    ticket: Ticket,
    body: str,
    *,
    user: User,
    ip: str | None,
    uploads: list[Upload] = (),
    template: str = "reply",
) -> ThreadEntry:
    """A public reply to the customer: shown on the tracking page and emailed."""
    _check_open(ticket)
    body = check_text(body, "body", MAX_DESCRIPTION, required=True)
    actor = staff_actor(user, ip)
    entry = _add_message(ticket, EntryKind.PUBLIC_REPLY, body, actor=actor, author=user, uploads=uploads)
    clocks.on_public_reply(ticket, actor=actor)
    if ticket.status == Status.NEW:
        _set_status(ticket, Status.OPEN, actor, author_kind="staff", author=user)
    notify_customer(ticket, template, actor=actor, message=body)
    return entry


def add_note(
    ticket: Ticket, body: str, *, user: User, ip: str | None, uploads: list[Upload] = ()
) -> ThreadEntry:
    """An internal note: staff only, never on the tracking page."""
    body = check_text(body, "body", MAX_DESCRIPTION, required=True)
    actor = staff_actor(user, ip)
    return _add_message(ticket, EntryKind.INTERNAL_NOTE, body, actor=actor, author=user, uploads=uploads)


CALL_DIRECTIONS = ("inbound", "outbound")
CALL_OUTCOMES = ("answered", "no_answer", "busy", "voicemail", "wrong_number")


def log_call(
    ticket: Ticket,
    *,
    direction: str,
    number: str,
    duration_seconds: int,
    outcome: str,
    notes: str,
    user: User,
    ip: str | None,
    recording: Upload | None = None,
) -> ThreadEntry:
    """A phone call with the customer, with its recording if there is one. A call the
    customer answered (either way) is a response to them, for the response clocks."""
    if direction not in CALL_DIRECTIONS:
        raise DomainError(_l("Choose the call's direction."), "direction")
    if outcome not in CALL_OUTCOMES:
        raise DomainError(_l("Choose the call's outcome."), "outcome")
    if not 0 <= duration_seconds <= 24 * 3600:
        raise DomainError(_l("The duration must be between 0 and 86400 seconds."), "duration_seconds")
    number = customers.normalise_phone(number, tenant_settings().country)
    notes = check_text(notes, "notes", MAX_DESCRIPTION, required=False)
    actor = staff_actor(user, ip)
    details = {
        "direction": direction,
        "number": number,
        "duration_seconds": duration_seconds,
        "outcome": outcome,
    }
    entry = _add_entry(
        ticket, EntryKind.CALL_LOG, author_kind="staff", author=user, body=notes, details=details
    )
    record(
        "ticket.call_logged",
        "ticket",
        ticket.id,
        actor=actor,
        data={**details, "number": digest(number), "entry_id": entry.id, "notes_sha256": digest(notes)},
    )
    _attach(ticket, entry, [recording] if recording else [], actor)
    if outcome == "answered":
        clocks.on_answered_call(ticket, actor=actor)
    return entry


def request_information(ticket: Ticket, body: str, *, user: User, ip: str | None) -> ThreadEntry:
    """Ask the customer for something; the ticket waits for their answer."""
    entry = reply(ticket, body, user=user, ip=ip, template="request_info")
    _set_status(ticket, Status.AWAITING_CUSTOMER, staff_actor(user, ip), author_kind="staff", author=user)
    return entry


def assign(ticket: Ticket, assignee_id: int | None, *, user: User, ip: str | None) -> None:
    """Give the ticket to someone who works tickets, or to nobody (``None``)."""
    if assignee_id is not None and assignee_id not in {staff.id for staff in list_assignable_users()}:
        raise NotFound(_l("No active user has that id."), "assignee_id")
    _change(ticket, "assignee_id", assignee_id, "ticket.assigned", staff_actor(user, ip), author=user)


def set_priority(ticket: Ticket, priority: str, *, user: User, ip: str | None) -> None:
    try:
        priority = Priority(priority)
    except ValueError:
        raise DomainError(_l("Choose a priority from the list."), "priority") from None
    if priority == ticket.priority:
        return
    actor = staff_actor(user, ip)
    _change(ticket, "priority", priority, "ticket.priority_changed", actor, author=user)
    clocks.on_priority_change(ticket, actor=actor)


def _change(ticket: Ticket, field_name: str, value, action: str, actor: Actor, *, author: User) -> None:
    """Set one field of the ticket, recording it before and after (if it changes), in the
    audit trail and as an event in the ticket's timeline ("Assigned to X by Y")."""
    before = getattr(ticket, field_name)
    if before == value:
        return
    record(action, "ticket", ticket.id, actor=actor, data={"before": before, "after": value})
    setattr(ticket, field_name, value)
    _add_entry(
        ticket,
        EntryKind.SYSTEM_EVENT,
        author_kind="staff",
        author=author,
        details={"changed": field_name, "from": before, "to": value},
    )


def resolve(
    ticket: Ticket,
    body: str,
    *,
    user: User,
    ip: str | None,
    no_refund_reason: str | None = None,
    previewed_sha256: str | None = None,
) -> None:
    """Resolve with a final answer to the customer (the outcome and the reason), on the
    grounds ``crm.tickets.resolution`` allows. With ``previewed_sha256``, only if the
    customer would get exactly what that preview showed."""
    grounds = resolution.grounds_to_resolve(ticket, user, no_refund_reason)
    body = check_text(body, "body", MAX_DESCRIPTION, required=True)
    sending = resolution.outgoing(ticket, "resolved", body)
    if previewed_sha256 is not None and previewed_sha256 != sending.sha256:
        raise Conflict(
            _l("What the customer would receive has changed since the preview: check it again."), "body"
        )
    entry = reply(ticket, body, user=user, ip=ip, template="resolved")
    actor = staff_actor(user, ip)
    _set_status(ticket, Status.RESOLVED, actor, author_kind="staff", author=user)
    record(
        "ticket.resolved",
        "ticket",
        ticket.id,
        actor=actor,
        data={**grounds, "entry_id": entry.id, "sent_sha256": sending.sha256, "review": ticket.needs_manager},
    )
    ticket.needs_manager = False


def change_status(ticket: Ticket, new: Status, *, actor: Actor, user: User) -> None:
    """A status change another domain decides (a refund waiting for approval)."""
    _set_status(ticket, new, actor, author_kind="staff", author=user)


def resolve_after_final_response(ticket: Ticket, *, actor: Actor, user: User) -> None:
    _set_status(ticket, Status.RESOLVED, actor, author_kind="staff", author=user)
    ticket.needs_manager = False


def add_event_entry(
    ticket: Ticket, details: dict, *, user: User, actor: Actor, body: str = "", uploads: list[Upload] = ()
) -> tuple[ThreadEntry, list[Attachment]]:
    """A staff-only event in the thread (a payout recorded), with its files; ``body`` is
    the line the thread shows for it."""
    entry = _add_entry(
        ticket, EntryKind.SYSTEM_EVENT, author_kind="staff", author=user, body=body, details=details
    )
    return entry, _attach(ticket, entry, list(uploads), actor)


def close(ticket: Ticket, *, user: User, ip: str | None) -> None:
    owed = ledger.balance(ticket.id).owed_minor
    if owed:
        raise Conflict(
            _l(
                "%(owed)s of the approved refund is not paid yet: record the payout first.",
                owed=format_money(owed, ticket.currency),
            ),
            "status",
        )
    _set_status(ticket, Status.CLOSED, staff_actor(user, ip), author_kind="staff", author=user)


def reopen(ticket: Ticket, *, user: User, ip: str | None) -> None:
    _set_status(ticket, Status.OPEN, staff_actor(user, ip), author_kind="staff", author=user)


def merge(duplicate: Ticket, target: Ticket, *, user: User, ip: str | None) -> None:
    """Fold a duplicate into another open ticket of the same customer; the duplicate
    closes, and both threads say where the conversation went."""
    if duplicate.id == target.id:
        raise DomainError(_l("A ticket cannot be merged into itself."), "target")
    if duplicate.customer_id != target.customer_id:
        raise DomainError(_l("Only tickets of the same customer can be merged."), "target")
    if not target.is_open or not duplicate.is_open:
        raise Conflict(_l("Both tickets must be open to merge them."), "target")
    actor = staff_actor(user, ip)
    duplicate.merged_into_id = target.id
    _add_entry(
        duplicate,
        EntryKind.SYSTEM_EVENT,
        author_kind="staff",
        author=user,
        details={"merged_into": target.reference},
    )
    _add_entry(
        target,
        EntryKind.SYSTEM_EVENT,
        author_kind="staff",
        author=user,
        details={"merged_from": duplicate.reference},
    )
    _set_status(duplicate, Status.RESOLVED, actor, author_kind="staff", author=user)
    _set_status(duplicate, Status.CLOSED, actor, author_kind="staff", author=user)
    record(
        "ticket.merged",
        "ticket",
        duplicate.id,
        actor=actor,
        data={"into": target.id, "into_reference": target.reference},
    )


def set_receipt_time(
    ticket: Ticket, received_at: datetime, reason: str, *, user: User, ip: str | None
) -> None:
    """Staff say when a request they logged late truly came in, and why it was logged
    later: the ticket's regulatory deadlines then count from that time (the desk's own SLA
    clocks keep theirs). Recorded in the thread and the audit trail."""
    _check_open(ticket)
    reason = check_text(reason, "reason", 500, required=True)
    if received_at.tzinfo is None:
        raise DomainError(_l("Give the date and time it came in."), "received_at")
    if received_at < ticket.created_at - timedelta(days=MAX_LATE_LOGGING_DAYS):
        raise DomainError(
            _l("A request logged more than %(n)d days late needs a new ticket.", n=MAX_LATE_LOGGING_DAYS),
            "received_at",
        )
    actor = staff_actor(user, ip)
    before = ticket.receipt_time
    clocks.move_receipt(ticket, received_at, actor=actor)
    ticket.received_at = received_at
    _add_entry(
        ticket,
        EntryKind.SYSTEM_EVENT,
        author_kind="staff",
        author=user,
        body=reason,
        details={"received_at": received_at.isoformat(), "logged_at": ticket.created_at.isoformat()},
    )
    record(
        "ticket.receipt_time_set",
        "ticket",
        ticket.id,
        actor=actor,
        data={
            "before": before.isoformat(),
            "after": received_at.isoformat(),
            "reason_sha256": digest(reason),
        },
    )


def withdraw_by_staff(ticket: Ticket, *, user: User, ip: str | None) -> None:
    """The customer withdrew by phone or email; staff record it."""
    _set_status(ticket, Status.WITHDRAWN, staff_actor(user, ip), author_kind="staff", author=user)


# --- the customer's actions (tracking page) ----------------------------------------------


def _check_customer_quota(ticket: Ticket, uploads: list[Upload]) -> None:
    """What a tracking link may add to one ticket, in all: a leaked link cannot fill the
    disk, and no real case needs more."""
    if not uploads:
        return
    count, size = db.session.execute(
        select(func.count(Attachment.id), func.coalesce(func.sum(Attachment.size), 0))
        .join(ThreadEntry, ThreadEntry.id == Attachment.entry_id)
        .where(Attachment.ticket_id == ticket.id, ThreadEntry.author_kind == "customer")
    ).one()
    if (
        count + len(uploads) > CUSTOMER_FILES_PER_TICKET
        or size + sum(len(upload.content) for upload in uploads) > CUSTOMER_BYTES_PER_TICKET
    ):
        raise DomainError(
            _l(
                "This request already holds as many files as it can take (%(n)d files or %(mb)d MB). "
                "Send further evidence by email or post.",
                n=CUSTOMER_FILES_PER_TICKET,
                mb=CUSTOMER_BYTES_PER_TICKET // 2**20,
            ),
            "attachments",
        )


def customer_reply(ticket: Ticket, body: str, *, ip: str | None, uploads: list[Upload] = ()) -> ThreadEntry:
    """The customer answers on the tracking page; a waiting ticket is open again."""
    if not ticket.is_open:
        raise Conflict(_l("This request is closed. Submit a new request if you need more help."), "body")
    body = check_text(body, "body", MAX_DESCRIPTION, required=True)
    actor = customer_actor(ticket, ip)
    _check_uploads(list(uploads))
    _check_customer_quota(ticket, list(uploads))
    entry = _add_message(ticket, EntryKind.INBOUND_MESSAGE, body, actor=actor, uploads=uploads)
    if ticket.status == Status.AWAITING_CUSTOMER:
        _set_status(ticket, Status.OPEN, actor, author_kind="customer")
    clocks.on_customer_message(ticket, actor=actor)
    staff_notices.tell_assignee(ticket, staff_notices.TicketEvent.CUSTOMER_REPLIED)
    return entry


def withdraw_by_customer(ticket: Ticket, *, ip: str | None) -> None:
    if not ticket.is_open:
        raise Conflict(_l("Only an open request can be withdrawn."), "status")
    _set_status(ticket, Status.WITHDRAWN, customer_actor(ticket, ip), author_kind="customer")


def not_satisfied(ticket: Ticket, body: str, *, ip: str | None) -> None:
    """The customer rejects the resolution: the ticket reopens, flagged for a manager."""
    if ticket.status != Status.RESOLVED:
        raise Conflict(_l("Only a resolved request can be reopened."), "status")
    body = check_text(body, "body", MAX_DESCRIPTION, required=False)
    actor = customer_actor(ticket, ip)
    if body:
        _add_message(ticket, EntryKind.INBOUND_MESSAGE, body, actor=actor)
    _set_status(ticket, Status.OPEN, actor, author_kind="customer")
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


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget_received(session: Session, *args) -> None:
    session.info.pop(RECEIVED_KEY, None)
