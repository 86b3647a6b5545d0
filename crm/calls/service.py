"""Call records from a dialer. A record is kept as posted, then filed: on the one open
ticket of the customer's number, else on the one open lead of it, else kept unmatched
for staff to file by reference or dismiss with a reason. Its recording comes with it
(checked by its bytes, like the form's files) or by URL with its SHA-256, fetched by a
job that keeps it only if the bytes hash to what the dialer promised."""

import hashlib
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from crm import jobs
from crm.audit.chain import digest
from crm.audit.service import Actor, record
from crm.auth.models import User
from crm.calls.models import CallRecord, CallState, RecordingState, Unmatched
from crm.columns import utcnow
from crm.customers.models import Customer
from crm.customers.service import normalise_phone
from crm.errors import Conflict, DomainError
from crm.extensions import db
from crm.files.storage import blob_path, store_recording
from crm.leads import pipeline
from crm.leads.models import OPEN_STAGES, Lead, LeadActivity
from crm.outbound import check_public_url
from crm.provisioning.service import tenant_settings
from crm.tickets import service as tickets
from crm.tickets.models import OPEN_STATES, ThreadEntry, Ticket
from crm.tickets.thread import attach
from tenants import current_tenant

UNMATCHED_LABELS = {
    Unmatched.NO_MATCH: _l("No open ticket or lead has this number."),
    Unmatched.SEVERAL_TICKETS: _l("The number has several open tickets: choose one."),
    Unmatched.SEVERAL_LEADS: _l("The number has several open leads: choose one."),
    Unmatched.NOT_ALLOWED: _l(
        "The number's lead may not be called: no consent on record, or it is on the do-not-contact list."
    ),
}
OUTCOMES = ("answered", "no_answer", "busy", "voicemail", "wrong_number", "refused")
DIRECTIONS = ("outbound", "inbound")
PAGE_SIZE = 50
FETCH_TIMEOUT_SECONDS = 10
SHA256_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class DialerCall:
    direction: str
    from_number: str
    to_number: str
    started_at: datetime
    duration_seconds: int
    outcome: str
    note: str = ""
    external_id: str | None = None
    recording: tickets.Upload | None = None
    recording_url: str | None = None
    recording_sha256: str | None = None


def customer_number(call: CallRecord) -> str:
    """The other party's number: the one called, or the one calling."""
    return call.to_number if call.direction == "outbound" else call.from_number


def _check(call: DialerCall) -> tuple[str, str, str]:
    if call.direction not in DIRECTIONS:
        raise DomainError(_l("Choose the call's direction."), "direction")
    if call.outcome not in OUTCOMES:
        raise DomainError(_l("Choose the call's outcome."), "outcome")
    if not 0 <= call.duration_seconds <= 24 * 3600:
        raise DomainError(_l("The duration must be between 0 and 86400 seconds."), "duration_seconds")
    if call.started_at.tzinfo is None or call.started_at > utcnow() + timedelta(minutes=5):
        raise DomainError(_l("The start time cannot be in the future."), "started_at")
    country = tenant_settings().country
    numbers = []
    for field, raw in (("from", call.from_number), ("to", call.to_number)):
        try:
            numbers.append(normalise_phone(raw, country))
        except DomainError as error:
            raise DomainError(error.message, field) from None
    note = tickets.check_text(call.note, "note", tickets.MAX_DESCRIPTION, required=False)
    if call.recording and call.recording_url:
        raise DomainError(_l("Give the recording or its URL, not both."), "recording_url")
    if call.recording_url:
        sha256 = (call.recording_sha256 or "").lower()
        if len(sha256) != 64 or not set(sha256) <= SHA256_HEX:
            raise DomainError(
                _l("Give the recording's SHA-256 as 64 hexadecimal digits."), "recording_sha256"
            )
        check_public_url(call.recording_url, "recording_url")
    return numbers[0], numbers[1], note


def _keep_recording(call_record: CallRecord, content: bytes, filename: str | None) -> None:
    stored = store_recording(current_tenant().id, content, filename, max_bytes=tickets.MAX_FILE_BYTES)
    call_record.recording_state = RecordingState.STORED
    call_record.recording_sha256 = stored.sha256
    call_record.recording_size = stored.size
    call_record.recording_type = stored.content_type
    call_record.recording_name = stored.filename


def receive(
    call: DialerCall, *, actor: Actor, api_key_id: int | None, reference: str | None = None
) -> CallRecord:
    """Keep the dialer's record, then file it where it belongs: on ``reference`` when the
    dialer names the ticket or lead, else where the number matches, else nowhere yet."""
    from_number, to_number, note = _check(call)
    named = target_by_reference(reference) if reference else None
    if reference and named is None:
        raise DomainError(_l("No ticket or lead has this reference."), "reference")
    call_record = CallRecord(
        external_id=(call.external_id or None),
        direction=call.direction,
        from_number=from_number,
        to_number=to_number,
        started_at=call.started_at,
        duration_seconds=call.duration_seconds,
        outcome=call.outcome,
        note=note,
        state=CallState.UNMATCHED,
        api_key_id=api_key_id,
        created_at=utcnow(),
    )
    if call.recording and call.recording.content:
        _keep_recording(call_record, call.recording.content, call.recording.filename)
    elif call.recording_url:
        call_record.recording_state = RecordingState.PENDING
        call_record.recording_url = call.recording_url
        call_record.recording_sha256 = call.recording_sha256.lower()
    db.session.add(call_record)
    db.session.flush()
    record(
        "call.received",
        "call",
        call_record.id,
        actor=actor,
        data={
            "external_id": call_record.external_id,
            "direction": call_record.direction,
            "from": digest(from_number),
            "to": digest(to_number),
            "started_at": call_record.started_at.isoformat(),
            "duration_seconds": call_record.duration_seconds,
            "outcome": call_record.outcome,
            "note_sha256": digest(note) if note else None,
            "recording_sha256": call_record.recording_sha256,
            "recording_url": call_record.recording_url,
        },
    )
    target, reason = (named, None) if named else match(customer_number(call_record))
    if target is None:
        call_record.unmatched_reason = reason
    else:
        # The ticket's and the lead's rules refuse before they write anything (a lead
        # refuses an outbound call without consent): such a call waits for staff.
        try:
            _file(call_record, target, actor=actor, user=None)
        except DomainError:
            call_record.unmatched_reason = Unmatched.NOT_ALLOWED
    if call_record.recording_state == RecordingState.PENDING:
        jobs.enqueue(fetch_recording, call_record.id)
    return call_record


def match(phone: str) -> tuple[Ticket | Lead | None, Unmatched | None]:
    """The one open ticket of a customer with this number, else the one open lead of it;
    with none or several, nothing, and why."""
    customer_ids = select(Customer.id).where(Customer.phone == phone)
    open_tickets = list(
        db.session.scalars(
            select(Ticket)
            .where(Ticket.customer_id.in_(customer_ids), Ticket.status.in_(OPEN_STATES))
            .limit(2)
        )
    )
    if len(open_tickets) == 1:
        return open_tickets[0], None
    if open_tickets:
        return None, Unmatched.SEVERAL_TICKETS
    # In the query, not after it: a number's closed leads must not crowd out its open one.
    open_leads = list(
        db.session.scalars(select(Lead).where(Lead.phone == phone, Lead.stage.in_(OPEN_STAGES)).limit(2))
    )
    if len(open_leads) == 1:
        return open_leads[0], None
    if open_leads:
        return None, Unmatched.SEVERAL_LEADS
    return None, Unmatched.NO_MATCH


def _recording_upload(call_record: CallRecord) -> tickets.Upload | None:
    if call_record.recording_state != RecordingState.STORED:
        return None
    content = blob_path(call_record.tenant_id, call_record.recording_sha256).read_bytes()
    return tickets.Upload(call_record.recording_name, content)


def _file(call_record: CallRecord, target: Ticket | Lead, *, actor: Actor, user: User | None) -> None:
    """Write the call where it belongs: a call-log entry on the ticket (an answered call
    meets its response clocks) or a call on the lead (the lead's rules apply)."""
    dialer = {"call_id": call_record.id, "started_at": call_record.started_at.isoformat()}
    recording = _recording_upload(call_record)
    if isinstance(target, Ticket):
        entry = tickets.log_call(
            target,
            direction=call_record.direction,
            number=customer_number(call_record),
            duration_seconds=call_record.duration_seconds,
            outcome=call_record.outcome,
            notes=call_record.note,
            user=user,
            ip=actor.ip,
            recording=recording,
            actor=actor,
            dialer=dialer,
        )
        call_record.ticket_id = target.id
    else:
        entry = pipeline.log_call(
            target,
            pipeline.CallLog(
                call_record.outcome,
                call_record.direction,
                call_record.duration_seconds,
                call_record.note,
                recording,
                dialer,
            ),
            user=user,
            actor=actor,
        )
        call_record.lead_id = target.id
    call_record.entry_id = entry.id
    call_record.state = CallState.FILED
    call_record.unmatched_reason = None
    record(
        "call.filed",
        "call",
        call_record.id,
        actor=actor,
        data={
            "ticket_id": call_record.ticket_id,
            "lead_id": call_record.lead_id,
            "entry_id": entry.id,
            "by_staff": user is not None,
        },
    )


def target_by_reference(reference: str) -> Ticket | Lead | None:
    """A ticket (``RF-1042``) or a lead (``LD-1001``) of this tenant, by its reference."""
    text = (reference or "").strip().upper().replace(" ", "-")
    prefix, _, digits = text.rpartition("-")
    if not prefix or not digits.isdigit() or len(digits) > 9:
        return None
    ticket = tickets.ticket_by_number(int(digits))
    if ticket is not None and ticket.reference.upper() == text:
        return ticket
    return pipeline.lead_by_reference(text)


def _must_be_unmatched(call_record: CallRecord) -> None:
    if call_record.state != CallState.UNMATCHED:
        raise Conflict(_l("This call has been dealt with already."), "reference")


def file_by_staff(call_record: CallRecord, reference: str, *, user: User, actor: Actor) -> Ticket | Lead:
    """Staff file an unmatched call on the ticket or lead it belongs to."""
    _must_be_unmatched(call_record)
    target = target_by_reference(reference)
    if target is None:
        raise DomainError(_l("No ticket or lead has this reference."), "reference")
    _file(call_record, target, actor=actor, user=user)
    call_record.resolved_by_id, call_record.resolved_at = user.id, utcnow()
    return target


def dismiss(call_record: CallRecord, reason: str, *, user: User, actor: Actor) -> None:
    """Staff say the call belongs nowhere (a wrong number, a test call), with the reason."""
    _must_be_unmatched(call_record)
    reason = tickets.check_text(reason, "reason", 500, required=True)
    call_record.state = CallState.DISMISSED
    call_record.dismissed_reason = reason
    call_record.resolved_by_id, call_record.resolved_at = user.id, utcnow()
    record("call.dismissed", "call", call_record.id, actor=actor, data={"reason": reason})


def call_by_id(call_id: int) -> CallRecord | None:
    return db.session.get(CallRecord, call_id) if 0 < call_id < 2**63 else None


def list_page(state: str | None, *, before: int | None = None, limit: int = PAGE_SIZE) -> list[CallRecord]:
    """Newest first, ``limit + 1`` rows (the last says there is a next page)."""
    query = select(CallRecord).order_by(CallRecord.id.desc()).limit(limit + 1)
    if state:
        query = query.where(CallRecord.state == state)
    if before:
        query = query.where(CallRecord.id < before)
    return list(db.session.scalars(query))


def filed_on(calls: list[CallRecord]) -> dict[int, tuple[str, str, int | None]]:
    """Where each filed call went: call id -> ("ticket" or "lead", its reference, a
    ticket's number)."""
    ticket_ids = {call.ticket_id for call in calls if call.ticket_id}
    lead_ids = {call.lead_id for call in calls if call.lead_id}
    found_tickets = (
        {t.id: t for t in db.session.scalars(select(Ticket).where(Ticket.id.in_(ticket_ids)))}
        if ticket_ids
        else {}
    )
    found_leads = (
        {lead.id: lead for lead in db.session.scalars(select(Lead).where(Lead.id.in_(lead_ids)))}
        if lead_ids
        else {}
    )
    places = {}
    for call in calls:
        if call.ticket_id in found_tickets:
            ticket = found_tickets[call.ticket_id]
            places[call.id] = ("ticket", ticket.reference, ticket.number)
        elif call.lead_id in found_leads:
            places[call.id] = ("lead", found_leads[call.lead_id].reference, None)
    return places


def unmatched_reason(call_record: CallRecord) -> str | None:
    """Why the call waits, in the reader's language."""
    label = UNMATCHED_LABELS.get(call_record.unmatched_reason)
    return str(label) if label else call_record.unmatched_reason


def unmatched_count() -> int:
    return db.session.scalar(
        select(func.count()).select_from(CallRecord).where(CallRecord.state == CallState.UNMATCHED)
    )


# --- recordings given by URL ------------------------------------------------------------------


def _download(url: str) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "Ledgerdesk-Recordings/1"})
    with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_SECONDS) as response:
        content = response.read(tickets.MAX_FILE_BYTES + 1)
    if len(content) > tickets.MAX_FILE_BYTES:
        raise DomainError(
            _l("The recording is larger than %(mb)d MB.", mb=tickets.MAX_FILE_BYTES // 2**20), "recording"
        )
    return content


def fetch_recording(call_id: int) -> None:
    """A job: fetch a recording given by URL and keep it only if its bytes have the
    SHA-256 the dialer gave; then attach it where the call was filed. A failure is kept
    on the record, for staff to see."""
    call_record = call_by_id(call_id)
    if call_record is None or call_record.recording_state != RecordingState.PENDING:
        return
    actor = Actor.system()
    promised = call_record.recording_sha256
    try:
        check_public_url(call_record.recording_url, "recording_url")
        content = _download(call_record.recording_url)
        if hashlib.sha256(content).hexdigest() != promised:
            raise DomainError(_l("The recording's bytes do not have the SHA-256 given."), "recording_sha256")
        _keep_recording(call_record, content, call_record.recording_url.rsplit("/", 1)[-1])
    except (OSError, urllib.error.URLError, ValueError, DomainError) as error:
        message = str(error.message) if isinstance(error, DomainError) else f"{type(error).__name__}: {error}"
        call_record.recording_state = RecordingState.FAILED
        call_record.recording_error = message[:300]
        record("call.recording_failed", "call", call_record.id, actor=actor, data={"error": message[:300]})
        db.session.commit()
        return
    record(
        "call.recording_fetched",
        "call",
        call_record.id,
        actor=actor,
        data={"sha256": call_record.recording_sha256, "size": call_record.recording_size},
    )
    _attach_late_recording(call_record, actor)
    db.session.commit()


def _attach_late_recording(call_record: CallRecord, actor: Actor) -> None:
    """A recording that came after its call was filed joins the filed entry."""
    if call_record.ticket_id:
        ticket = db.session.get(Ticket, call_record.ticket_id)
        entry = db.session.get(ThreadEntry, call_record.entry_id)
        attach(ticket, entry, [_recording_upload(call_record)], actor)
    elif call_record.lead_id:
        activity = db.session.get(LeadActivity, call_record.entry_id)
        activity.details = {
            **activity.details,
            "recording": {
                "sha256": call_record.recording_sha256,
                "size": call_record.recording_size,
                "content_type": call_record.recording_type,
                "filename": call_record.recording_name,
            },
        }
