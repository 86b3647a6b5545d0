"""What staff do to a ticket once it is in: reply, note, log a call, ask for information,
assign, prioritise, resolve, close, reopen, merge, correct when it came in, withdraw."""

from datetime import datetime, timedelta

from flask_babel import lazy_gettext as _l

from crm.audit.chain import digest, format_instant
from crm.audit.service import Actor, record
from crm.auth.models import User
from crm.customers import service as customers
from crm.errors import Conflict, DomainError, NotFound
from crm.money import format_money
from crm.provisioning.service import tenant_settings
from crm.refunds import ledger
from crm.sla import clocks
from crm.tickets import resolution
from crm.tickets.actors import staff_actor
from crm.tickets.input_checks import MAX_DESCRIPTION, Upload, check_text
from crm.tickets.labels import STATUS_LABELS
from crm.tickets.lookup import list_assignable_users
from crm.tickets.models import EntryKind, Priority, Status, ThreadEntry, Ticket
from crm.tickets.status import set_status
from crm.tickets.thread import add_entry, add_message, attach, notify_customer, via

# How long after it came in a request can still be logged against its true time.
MAX_LATE_LOGGING_DAYS = 90


def _check_open(ticket: Ticket) -> None:
    if not ticket.is_open:
        raise Conflict(
            _l("This ticket is %(status)s; reopen it first.", status=STATUS_LABELS[Status(ticket.status)]),
            "body",
        )


def acting(user: User | None, ip: str | None, actor: Actor | None) -> Actor:
    """Who acts: the given actor (an API key), else the member of staff."""
    return actor or staff_actor(user, ip)


def reply(
    ticket: Ticket,
    body: str,
    *,
    user: User | None,
    ip: str | None,
    uploads: list[Upload] = (),
    template: str = "reply",
    actor: Actor | None = None,
) -> ThreadEntry:
    """A public reply to the customer: shown on the tracking page and emailed."""
    _check_open(ticket)
    body = check_text(body, "body", MAX_DESCRIPTION, required=True)
    actor = acting(user, ip, actor)
    entry = add_message(ticket, EntryKind.PUBLIC_REPLY, body, actor=actor, author=user, uploads=uploads)
    clocks.on_public_reply(ticket, actor=actor)
    if ticket.status == Status.NEW:
        set_status(ticket, Status.OPEN, actor, author_kind="staff", author=user)
    notify_customer(ticket, template, actor=actor, message=body)
    return entry


def add_note(
    ticket: Ticket,
    body: str,
    *,
    user: User | None,
    ip: str | None,
    uploads: list[Upload] = (),
    actor: Actor | None = None,
) -> ThreadEntry:
    """An internal note: staff only, never on the tracking page."""
    body = check_text(body, "body", MAX_DESCRIPTION, required=True)
    actor = acting(user, ip, actor)
    return add_message(ticket, EntryKind.INTERNAL_NOTE, body, actor=actor, author=user, uploads=uploads)


CALL_DIRECTIONS = ("inbound", "outbound")
CALL_OUTCOMES = ("answered", "no_answer", "busy", "voicemail", "wrong_number", "refused")


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
    actor: Actor | None = None,
    dialer: dict | None = None,
) -> ThreadEntry:
    """A phone call with the customer, with its recording if there is one. A call the
    customer answered (either way) is a response to them, for the response clocks.
    ``dialer``: what a dialer's call record adds (its id here, when the call started)."""
    if direction not in CALL_DIRECTIONS:
        raise DomainError(_l("Choose the call's direction."), "direction")
    if outcome not in CALL_OUTCOMES:
        raise DomainError(_l("Choose the call's outcome."), "outcome")
    if not 0 <= duration_seconds <= 24 * 3600:
        raise DomainError(_l("The duration must be between 0 and 86400 seconds."), "duration_seconds")
    number = customers.normalise_phone(number, tenant_settings().country)
    notes = check_text(notes, "notes", MAX_DESCRIPTION, required=False)
    actor = acting(user, ip, actor)
    details = {
        "direction": direction,
        "number": number,
        "duration_seconds": duration_seconds,
        "outcome": outcome,
        **(dialer or {}),
    }
    entry = add_entry(
        ticket, EntryKind.CALL_LOG, author_kind="staff", author=user, body=notes, details=details
    )
    record(
        "ticket.call_logged",
        "ticket",
        ticket.id,
        actor=actor,
        data={**details, "number": digest(number), "entry_id": entry.id, "notes_sha256": digest(notes)},
    )
    attach(ticket, entry, [recording] if recording else [], actor)
    if outcome == "answered":
        clocks.on_answered_call(ticket, actor=actor)
    return entry


def request_information(ticket: Ticket, body: str, *, user: User, ip: str | None) -> ThreadEntry:
    """Ask the customer for something; the ticket waits for their answer."""
    entry = reply(ticket, body, user=user, ip=ip, template="request_info")
    set_status(ticket, Status.AWAITING_CUSTOMER, staff_actor(user, ip), author_kind="staff", author=user)
    return entry


def assign(
    ticket: Ticket, assignee_id: int | None, *, user: User | None, ip: str | None, actor: Actor | None = None
) -> None:
    """Give the ticket to someone who works tickets, or to nobody (``None``)."""
    if assignee_id is not None and assignee_id not in {staff.id for staff in list_assignable_users()}:
        raise NotFound(_l("No active user has that id."), "assignee_id")
    _change(ticket, "assignee_id", assignee_id, "ticket.assigned", acting(user, ip, actor), author=user)


def set_priority(
    ticket: Ticket, priority: str, *, user: User | None, ip: str | None, actor: Actor | None = None
) -> None:
    try:
        priority = Priority(priority)
    except ValueError:
        raise DomainError(_l("Choose a priority from the list."), "priority") from None
    if priority == ticket.priority:
        return
    actor = acting(user, ip, actor)
    _change(ticket, "priority", priority, "ticket.priority_changed", actor, author=user)
    clocks.on_priority_change(ticket, actor=actor)


def _change(
    ticket: Ticket, field_name: str, value, action: str, actor: Actor, *, author: User | None
) -> None:
    """Set one field of the ticket, recording it before and after (if it changes), in the
    audit trail and as an event in the ticket's timeline ("Assigned to X by Y")."""
    before = getattr(ticket, field_name)
    if before == value:
        return
    record(action, "ticket", ticket.id, actor=actor, data={"before": before, "after": value})
    setattr(ticket, field_name, value)
    add_entry(
        ticket,
        EntryKind.SYSTEM_EVENT,
        author_kind="staff",
        author=author,
        details={"changed": field_name, "from": before, "to": value, **via(actor)},
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
    set_status(ticket, Status.RESOLVED, actor, author_kind="staff", author=user)
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
    set_status(ticket, new, actor, author_kind="staff", author=user)


def resolve_after_final_response(ticket: Ticket, *, actor: Actor, user: User) -> None:
    set_status(ticket, Status.RESOLVED, actor, author_kind="staff", author=user)
    ticket.needs_manager = False


def close(ticket: Ticket, *, user: User | None, ip: str | None, actor: Actor | None = None) -> None:
    owed = ledger.balance(ticket.id).owed_minor
    if owed:
        raise Conflict(
            _l(
                "%(owed)s of the approved refund is not paid yet: record the payout first.",
                owed=format_money(owed, ticket.currency),
            ),
            "status",
        )
    set_status(ticket, Status.CLOSED, acting(user, ip, actor), author_kind="staff", author=user)


def reopen(ticket: Ticket, *, user: User | None, ip: str | None, actor: Actor | None = None) -> None:
    set_status(ticket, Status.OPEN, acting(user, ip, actor), author_kind="staff", author=user)


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
    add_entry(
        duplicate,
        EntryKind.SYSTEM_EVENT,
        author_kind="staff",
        author=user,
        details={"merged_into": target.reference},
    )
    add_entry(
        target,
        EntryKind.SYSTEM_EVENT,
        author_kind="staff",
        author=user,
        details={"merged_from": duplicate.reference},
    )
    set_status(duplicate, Status.RESOLVED, actor, author_kind="staff", author=user)
    set_status(duplicate, Status.CLOSED, actor, author_kind="staff", author=user)
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
    add_entry(
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
            "before": format_instant(before),
            "after": format_instant(received_at),
            "reason_sha256": digest(reason),
        },
    )


def withdraw_by_staff(ticket: Ticket, *, user: User, ip: str | None) -> None:
    """The customer withdrew by phone or email; staff record it."""
    set_status(ticket, Status.WITHDRAWN, staff_actor(user, ip), author_kind="staff", author=user)
