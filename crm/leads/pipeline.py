"""What staff do with a lead: call (within what consent and the do-not-contact list
allow), note, email, move it through the stages, assign it, and win it into a customer.

Every change writes its activity and its audit event (digests, not personal data) in the
caller's transaction; the caller commits.
"""

from dataclasses import dataclass
from datetime import date, datetime

from flask import render_template
from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from crm.access import Role
from crm.audit.chain import digest
from crm.audit.service import Actor, record
from crm.auth.models import User
from crm.columns import utcnow
from crm.customers import service as customers
from crm.customers.models import Customer
from crm.dnc import service as dnc
from crm.dnc.models import EntrySource
from crm.errors import Conflict, DomainError, NotFound
from crm.extensions import db
from crm.files.storage import store_recording
from crm.leads import consent
from crm.leads.models import (
    STAGE_TRANSITIONS,
    UNANSWERED,
    ActivityKind,
    CallOutcome,
    Consent,
    Lead,
    LeadActivity,
    LeadRequest,
    Purpose,
    Stage,
)
from crm.notify.service import queue_email
from crm.provisioning.service import tenant_settings
from crm.sla import clocks
from crm.sla.models import Metric
from crm.tickets.input_checks import MAX_FILE_BYTES, Upload, check_text
from crm.tickets.links import external_url
from tenants import current_tenant

MAX_NOTE = 20_000
MAX_SUBJECT = 200
MAX_LOST_REASON = 200
MAX_CALL_SECONDS = 24 * 3600
WORKERS = (Role.AGENT, Role.MANAGER, Role.ADMIN)


@dataclass(frozen=True)
class CallLog:
    outcome: str
    direction: str = "outbound"
    duration_seconds: int | None = None
    note: str = ""
    recording: Upload | None = None
    dialer: dict | None = None  # what a dialer's call record adds: its id, when it started


def lead_by_reference(reference: str) -> Lead | None:
    """The tenant's lead with this reference (``LD-1001``; case and spaces forgiven)."""
    text = (reference or "").strip().upper().replace(" ", "-")
    prefix, _, digits = text.rpartition("-")
    if not digits.isdigit() or len(digits) > 9:
        return None
    lead = db.session.scalars(select(Lead).where(Lead.number == int(digits))).one_or_none()
    return lead if lead is not None and (not prefix or lead.reference.upper() == text) else None


def activities_of(lead: Lead) -> list[LeadActivity]:
    """The lead's history, newest first."""
    query = select(LeadActivity).where(LeadActivity.lead_id == lead.id).order_by(LeadActivity.id.desc())
    return list(db.session.scalars(query))


def requests_of(lead: Lead) -> list[LeadRequest]:
    """Each time the person asked, oldest first."""
    return list(
        db.session.scalars(select(LeadRequest).where(LeadRequest.lead_id == lead.id).order_by(LeadRequest.id))
    )


def _activity(lead: Lead, kind: ActivityKind, user: User | None, body: str = "", **details) -> LeadActivity:
    entry = LeadActivity(
        lead_id=lead.id,
        kind=kind,
        author_user_id=user.id if user else None,
        body=body,
        details=details,
        created_at=utcnow(),
    )
    db.session.add(entry)
    lead.updated_at = entry.created_at
    db.session.flush()
    return entry


def _must_be_open(lead: Lead) -> None:
    if lead.erased_at is not None:
        raise Conflict(_l("This lead's details have been erased."))


def _meet_first_contact(lead: Lead, actor: Actor, at: datetime) -> None:
    met = clocks.meet("lead", lead.id, Metric.FIRST_CONTACT, actor=actor, at=at)
    if met or lead.first_contacted_at is None:
        lead.first_contacted_at = lead.first_contacted_at or at
    lead.first_contact_due_at = None


# --- calls, notes, emails -------------------------------------------------------------------------


def log_call(lead: Lead, call: CallLog, *, user: User, actor: Actor) -> LeadActivity:
    """A call with the lead. An outbound call needs consent on record and no later
    do-not-contact entry: refused otherwise, with the reason. An answered call is the
    first contact; unanswered ones are counted, and after the tenant's number of them in
    a row an unanswered lead is marked unreachable."""
    _must_be_open(lead)
    try:
        outcome = CallOutcome(call.outcome)
    except ValueError:
        raise DomainError(_l("Choose the call's outcome."), "outcome") from None
    if call.direction not in ("outbound", "inbound"):
        raise DomainError(_l("Choose the call's direction."), "direction")
    if call.duration_seconds is not None and not 0 <= call.duration_seconds <= MAX_CALL_SECONDS:
        raise DomainError(_l("Give the duration in seconds, at most a day."), "duration_seconds")
    note = check_text(call.note, "note", MAX_NOTE, required=False)
    if call.direction == "outbound":
        allowed = consent.permission(lead)
        if not allowed.call:
            raise DomainError(allowed.reason, "outcome")
    recording = _kept_recording(lead, call.recording)
    now = utcnow()
    entry = _activity(
        lead,
        ActivityKind.CALL,
        user,
        note,
        direction=call.direction,
        outcome=outcome,
        duration_seconds=call.duration_seconds,
        recording=recording,
        **(call.dialer or {}),
    )
    record(
        "lead.call_logged",
        "lead",
        lead.id,
        actor=actor,
        data={
            "activity_id": entry.id,
            "direction": call.direction,
            "outcome": outcome,
            "duration_seconds": call.duration_seconds,
            "note_sha256": digest(note) if note else None,
            "recording_sha256": recording["sha256"] if recording else None,
        },
    )
    if outcome == CallOutcome.ANSWERED:
        lead.failed_attempts = 0
        _meet_first_contact(lead, actor, now)
        if lead.stage in (Stage.NEW, Stage.UNREACHABLE):
            _change_stage(lead, Stage.CONTACTED, user=user, actor=actor)
    elif outcome in UNANSWERED and call.direction == "outbound":
        lead.failed_attempts += 1
        limit = tenant_settings().unreachable_after_attempts
        if lead.failed_attempts >= limit and lead.stage in (Stage.NEW, Stage.CONTACTED):
            clocks.stop("lead", lead.id, Metric.FIRST_CONTACT, actor=actor, at=now)
            lead.first_contact_due_at = None
            _change_stage(lead, Stage.UNREACHABLE, user=None, actor=actor, attempts=lead.failed_attempts)
    return entry


def _kept_recording(lead: Lead, upload: Upload | None) -> dict | None:
    if upload is None or not upload.content:
        return None
    stored = store_recording(lead.tenant_id, upload.content, upload.filename, max_bytes=MAX_FILE_BYTES)
    return {
        "sha256": stored.sha256,
        "size": stored.size,
        "content_type": stored.content_type,
        "filename": stored.filename,
    }


def add_note(lead: Lead, body: str, *, user: User, actor: Actor) -> LeadActivity:
    _must_be_open(lead)
    body = check_text(body, "body", MAX_NOTE, required=True)
    entry = _activity(lead, ActivityKind.NOTE, user, body)
    record(
        "lead.note_added",
        "lead",
        lead.id,
        actor=actor,
        data={"activity_id": entry.id, "body_sha256": digest(body)},
    )
    return entry


def send_email(lead: Lead, subject: str, body: str, *, user: User, actor: Actor) -> LeadActivity:
    """An email to the lead from its page, with the stop link under it. Like an
    answered call, it is the first contact. Refused where a call would be."""
    _must_be_open(lead)
    if not lead.email:
        raise DomainError(_l("This lead has no email address."), "body")
    allowed = consent.permission(lead)
    if not allowed.call:
        raise DomainError(allowed.reason, "body")
    subject = check_text(subject, "subject", MAX_SUBJECT, required=True)
    body = check_text(body, "body", MAX_NOTE, required=True)
    with force_locale(lead.locale):
        text = render_template(
            "emails/lead_message.txt", body=body, lead=lead, tenant=current_tenant(), stop_link=stop_url(lead)
        )
    outbox_id = queue_email(
        to=lead.email,
        subject=subject,
        body=text,
        locale=lead.locale,
        ticket_id=None,
        actor=actor,
        automatic=None,  # what the member of staff wrote
    )
    entry = _activity(lead, ActivityKind.EMAIL, user, body, subject=subject, outbox_id=outbox_id)
    record(
        "lead.email_sent",
        "lead",
        lead.id,
        actor=actor,
        data={"activity_id": entry.id, "outbox_id": outbox_id, "to_sha256": digest(lead.email)},
    )
    _meet_first_contact(lead, actor, entry.created_at)
    if lead.stage in (Stage.NEW, Stage.UNREACHABLE):
        _change_stage(lead, Stage.CONTACTED, user=user, actor=actor)
    return entry


def stop_url(lead: Lead) -> str:
    return external_url("leads_public.stop", token=consent.stop_token(lead))


@dataclass(frozen=True)
class SalesHistory:
    """What sales did with a lead that became this customer: often the evidence in a
    refund dispute ("the service is not what I was told")."""

    lead: Lead
    activities: list[LeadActivity]
    proofs: list


def sales_history(customer_id: int) -> list[SalesHistory]:
    """The won leads linked to the customer record, oldest first, with their calls,
    notes, emails and consent proofs."""
    leads = db.session.scalars(select(Lead).where(Lead.customer_id == customer_id).order_by(Lead.id))
    return [SalesHistory(lead, activities_of(lead), consent.proofs_of(lead)) for lead in leads]


# --- stages ---------------------------------------------------------------------------------------


def _change_stage(lead: Lead, stage: Stage, *, user: User | None, actor: Actor, **details) -> None:
    before = lead.stage
    lead.stage = stage
    _activity(lead, ActivityKind.STAGE, user, details.pop("note", ""), before=before, after=stage, **details)
    record("lead.stage_changed", "lead", lead.id, actor=actor, data={"from": before, "to": stage, **details})


def set_stage(
    lead: Lead,
    stage: str,
    *,
    user: User,
    actor: Actor,
    lost_reason: str | None = None,
    customer_id: int | None = None,
    trial_starts_on: date | None = None,
    trial_ends_on: date | None = None,
) -> None:
    """Move the lead on. ``lost`` takes a reason; ``trial`` its dates (optional);
    ``won`` links the lead to a customer record: ``customer_id``, or the record of the
    same name and phone (else email), or a new one."""
    _must_be_open(lead)
    try:
        stage = Stage(stage)
    except ValueError:
        raise DomainError(_l("Choose a stage from the list."), "stage") from None
    if stage not in STAGE_TRANSITIONS[Stage(lead.stage)]:
        raise Conflict(_l("A lead cannot move from this stage to that one."), "stage")
    details: dict = {}
    if stage == Stage.LOST:
        lead.lost_reason = check_text(lost_reason, "lost_reason", MAX_LOST_REASON, required=True)
        details["reason_sha256"] = digest(lead.lost_reason)
        clocks.stop("lead", lead.id, Metric.FIRST_CONTACT, actor=actor)
        lead.first_contact_due_at = None
    if stage == Stage.TRIAL or trial_starts_on or trial_ends_on:
        if trial_starts_on and trial_ends_on and trial_ends_on < trial_starts_on:
            raise DomainError(_l("The trial cannot end before it starts."), "trial_ends_on")
        lead.trial_starts_on = trial_starts_on or lead.trial_starts_on or utcnow().date()
        lead.trial_ends_on = trial_ends_on or lead.trial_ends_on
        details["trial"] = [
            lead.trial_starts_on.isoformat(),
            lead.trial_ends_on.isoformat() if lead.trial_ends_on else None,
        ]
    if stage == Stage.WON:
        lead.customer_id = _customer_for(lead, customer_id, actor)
        lead.won_at = utcnow()
        details["customer_id"] = lead.customer_id
    _change_stage(lead, stage, user=user, actor=actor, **details)


def _customer_for(lead: Lead, customer_id: int | None, actor: Actor) -> int:
    if customer_id is not None:
        if db.session.get(Customer, customer_id) is None:
            raise NotFound(_l("No such customer."), "customer_id")
        return customer_id
    return customers.link_customer(
        name=lead.name, phone=lead.phone, email=lead.email, account_ref=None, locale=lead.locale, actor=actor
    )


def assign(lead: Lead, assignee_id: int | None, *, user: User, actor: Actor) -> None:
    """Give the lead to someone who works leads. An agent may take an unassigned lead;
    reassigning one that has an owner is a manager's call."""
    _must_be_open(lead)
    if lead.assignee_id is not None and user.role == Role.AGENT and assignee_id != lead.assignee_id:
        raise DomainError(_l("Only a manager can reassign a lead that has an owner."), "assignee_id")
    if user.role == Role.AGENT and assignee_id not in (user.id, None):
        raise DomainError(_l("Only a manager can give a lead to someone else."), "assignee_id")
    if assignee_id is not None:
        assignee = db.session.get(User, assignee_id)
        if assignee is None or not assignee.active or assignee.role not in WORKERS:
            raise DomainError(_l("Choose someone who works leads."), "assignee_id")
    if assignee_id == lead.assignee_id:
        return
    before = lead.assignee_id
    lead.assignee_id = assignee_id
    _activity(lead, ActivityKind.ASSIGNMENT, user, before=before, after=assignee_id)
    record("lead.assigned", "lead", lead.id, actor=actor, data={"from": before, "to": assignee_id})


def assignable_users() -> list[User]:
    """Whom a lead may be given to: active agents, managers and admins."""
    return list(
        db.session.scalars(
            select(User).where(User.active.is_(True), User.role.in_(WORKERS)).order_by(User.display_name)
        )
    )


def erase(lead: Lead, *, user: User, actor: Actor) -> None:
    """The person's details removed on request (a manager's decision): the lead keeps its
    reference, stage and history of what happened, without who it was. The consent
    proofs stay, with the number they were given for, until each one's retention ends
    (``purge_expired_proofs``): they are what shows the calls were allowed."""
    if user.role not in (Role.MANAGER, Role.ADMIN):
        raise DomainError(_l("Only a manager can erase a lead's personal details."))
    _must_be_open(lead)
    erase_details(lead, actor=actor)


def erase_details(lead: Lead, *, actor: Actor) -> None:
    """``erase`` once allowed (also part of a customer's erasure)."""
    now = utcnow()
    lead.name, lead.company, lead.phone, lead.email, lead.need = "—", None, None, None, None
    lead.erased_at = now
    for request in requests_of(lead):
        request.need, request.ip = None, None
    for entry in activities_of(lead):
        entry.body = ""
    clocks.stop("lead", lead.id, Metric.FIRST_CONTACT, actor=actor, at=now)
    lead.first_contact_due_at = None
    record("lead.erased", "lead", lead.id, actor=actor, data={"reference": lead.reference})


def purge_expired_proofs(now: datetime | None = None) -> int:
    """Delete the consent proofs of erased leads whose retention has ended; how many."""
    now = now or utcnow()
    erased = select(Lead.id).where(Lead.erased_at.is_not(None))
    expired = list(
        db.session.scalars(select(Consent).where(Consent.lead_id.in_(erased), Consent.retain_until <= now))
    )
    for proof in expired:
        record("consent.purged", "consent", proof.id, actor=Actor.system(), data={"lead_id": proof.lead_id})
        db.session.delete(proof)
    return len(expired)


# --- consent and the list -------------------------------------------------------------------------


def record_consent(lead: Lead, evidence_ref: str, *, user: User, actor: Actor) -> None:
    """Staff record a consent given elsewhere (a signed form, a recorded call): where
    its proof is. A lead imported without consent may be called from then on."""
    _must_be_open(lead)
    evidence_ref = check_text(evidence_ref, "evidence_ref", 200, required=True)
    if dnc.standing(lead.phone, lead.email).listed:
        # Staff's word does not outweigh the person's own request to stop: only the person
        # asking again (the form), or a manager removing the entry, lifts it.
        raise DomainError(
            _l(
                "This number is on the do-not-contact list: a manager must remove it before "
                "consent can be recorded."
            ),
            "evidence_ref",
        )
    proof = consent.record_proof(
        lead,
        request_id=None,
        purpose=Purpose.CONTACT,
        given=True,
        text=None,
        channel="staff",
        ip=actor.ip,
        evidence_ref=evidence_ref,
    )
    lead.contact_consent_at = proof.recorded_at
    db.session.flush()
    _activity(lead, ActivityKind.CONSENT, user, evidence_ref=evidence_ref)
    record("lead.consent_recorded", "lead", lead.id, actor=actor, data=consent.proof_summary(proof))


def refuse_contact(lead: Lead, *, source: str, reason: str, user: User | None, actor: Actor) -> bool:
    """The person asked not to be contacted (on a call, by the stop link, through
    12321): their number and address go on the list at once, and their marketing
    consent is withdrawn. True if anything new was listed."""
    added = False
    for kind, value in (("phone", lead.phone), ("email", lead.email)):
        if value:
            _entry, new = dnc.add_entry(
                kind, value, reason=reason, source=source, actor=actor, user=user, lead_id=lead.id
            )
            added = added or new
    now = utcnow()
    consent.withdraw_marketing(lead, now)
    lead.contact_consent_at = None
    _activity(lead, ActivityKind.CONSENT, user, refused=True, source=source)
    record("lead.contact_refused", "lead", lead.id, actor=actor, data={"source": source, "listed": added})
    return added


def stop_by_link(lead: Lead, *, ip: str | None) -> bool:
    return refuse_contact(
        lead,
        source=EntrySource.STOP_LINK,
        reason="Asked through the stop link",
        user=None,
        actor=Actor("anonymous", None, "stop-link", ip),
    )
