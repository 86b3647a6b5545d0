"""How leads come in: the hosted free-trial form, an import row, staff. A request from a
phone already on an open lead joins that lead as a new request; it never makes a second
lead. Every request that asks to be called gets a first-contact promise: a clock on the
tenant's business calendar, unless one is already running for the lead.
"""

from dataclasses import dataclass
from datetime import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import select, update

from crm.audit.chain import digest
from crm.audit.service import Actor, record
from crm.auth.models import User
from crm.columns import utcnow
from crm.customers.service import normalise_phone
from crm.errors import DomainError
from crm.extensions import db, insert_or_ignore
from crm.leads import consent
from crm.leads.models import (
    OPEN_STAGES,
    ActivityKind,
    Lead,
    LeadActivity,
    LeadRequest,
    LeadSubmissionUse,
    Purpose,
    Source,
    Stage,
)
from crm.mail_addresses import check_email
from crm.provisioning.models import TenantSettings
from crm.provisioning.service import tenant_settings
from crm.sla import clocks, versions
from crm.sla.models import Clock, ClockState, ConfigKind, Metric, Unit
from crm.tickets.input_checks import check_text
from tenants import current_tenant_id

MAX_NAME = 200
MAX_COMPANY = 200
MAX_NEED = 5_000
MAX_UTM = 100
MAX_SOURCE_DETAIL = 100
MAX_EVIDENCE = 200


@dataclass(frozen=True)
class LeadDetails:
    """What a request says of the person and what they want, as typed."""

    name: str
    phone: str | None
    email: str | None = None
    company: str | None = None
    need: str | None = None
    utm_source: str | None = None
    utm_medium: str | None = None
    utm_campaign: str | None = None
    locale: str = "zh_CN"


@dataclass(frozen=True)
class Received:
    lead: Lead
    joined: bool  # the request joined an open lead of the same phone
    repeated: bool = False  # the same form sent twice: nothing new was made


def checked_details(details: LeadDetails, *, phone_required: bool) -> LeadDetails:
    """The details as they will be kept, or a DomainError naming the field at fault."""
    name = check_text(details.name, "name", MAX_NAME, required=True)
    phone = None
    if details.phone or phone_required:
        phone = normalise_phone(details.phone or "", tenant_settings().country)
    email = check_email(details.email) if details.email else None
    if not phone and not email:
        raise DomainError(_l("Give a phone number or an email address."), "phone")
    return LeadDetails(
        name=name,
        phone=phone,
        email=email,
        company=check_text(details.company, "company", MAX_COMPANY, required=False) or None,
        need=check_text(details.need, "need", MAX_NEED, required=False) or None,
        utm_source=check_text(details.utm_source, "utm_source", MAX_UTM, required=False) or None,
        utm_medium=check_text(details.utm_medium, "utm_medium", MAX_UTM, required=False) or None,
        utm_campaign=check_text(details.utm_campaign, "utm_campaign", MAX_UTM, required=False) or None,
        locale=details.locale,
    )


# --- the trial form -----------------------------------------------------------------------


def submit_trial_request(
    details: LeadDetails, *, consent_contact: bool, consent_marketing: bool, nonce: str, ip: str | None
) -> Received:
    """The hosted free-trial form's submit. The contact box must be ticked: the form asks
    to be called. A repeated ``nonce`` (a double click) returns the lead the first
    submit made or joined."""
    details = checked_details(details, phone_required=True)
    if not consent_contact:
        raise DomainError(_l("Tick this box so that we may call you about your request."), "consent_contact")
    if not insert_or_ignore(LeadSubmissionUse, {"nonce": nonce, "used_at": utcnow()}):
        used = db.session.scalars(select(LeadSubmissionUse).where(LeadSubmissionUse.nonce == nonce)).one()
        if used.lead_id is None:  # the first submit failed and rolled back: cannot happen
            raise DomainError(_l("This form has already been sent."))
        return Received(db.session.get(Lead, used.lead_id), joined=False, repeated=True)
    texts = consent.consent_texts(details.locale)
    received = receive(
        details,
        source=Source.WEB_FORM,
        actor=Actor("anonymous", None, "trial-form", ip),
        ip=ip,
        proofs=[(texts[Purpose.CONTACT], True, None), (texts[Purpose.MARKETING], consent_marketing, None)],
    )
    db.session.connection().execute(
        update(LeadSubmissionUse.__table__)
        .where(LeadSubmissionUse.tenant_id == current_tenant_id(), LeadSubmissionUse.nonce == nonce)
        .values(lead_id=received.lead.id)
    )
    return received


# --- any request ----------------------------------------------------------------------------


def receive(
    details: LeadDetails,
    *,
    source: Source,
    actor: Actor,
    ip: str | None,
    proofs: list[tuple[consent.ConsentText | None, bool, str | None]],
    source_detail: str | None = None,
    at: datetime | None = None,
) -> Received:
    """File a request: join the open lead of its phone, or make a new lead. Each
    of ``proofs`` is (the box's text, ticked, evidence reference) and is kept as proof;
    a ticked contact box asks to be called, so a first-contact clock starts if none runs."""
    at = at or utcnow()
    details = checked_details(details, phone_required=False)  # as kept: E.164, trimmed
    lead = open_lead_of_phone(details.phone) if details.phone else None
    joined = lead is not None
    if lead is None:
        lead = _new_lead(details, source=source, source_detail=source_detail, at=at)
    request = LeadRequest(
        lead_id=lead.id,
        channel=source,
        need=details.need,
        utm_source=details.utm_source,
        utm_medium=details.utm_medium,
        utm_campaign=details.utm_campaign,
        ip=ip,
        created_at=at,
    )
    db.session.add(request)
    db.session.flush()
    kept = [
        consent.record_proof(
            lead,
            request_id=request.id,
            purpose=text.purpose if text else Purpose.CONTACT,
            given=given,
            text=text,
            channel=source,
            ip=ip,
            evidence_ref=evidence,
            at=at,
        )
        for text, given, evidence in proofs
    ]
    asks_call = any(p.purpose == Purpose.CONTACT and p.given for p in kept)
    if asks_call:
        lead.contact_consent_at = at
    marketing = [p for p in kept if p.purpose == Purpose.MARKETING]
    if marketing:
        # The latest answer counts: a box left empty is a refusal.
        lead.marketing_consent = marketing[-1].given
    if joined:
        if lead.stage == Stage.UNREACHABLE and asks_call:
            lead.stage = Stage.NEW  # they asked again: try again
            lead.failed_attempts = 0
        if details.email and not lead.email:
            lead.email = details.email
        lead.updated_at = at
    db.session.add(
        LeadActivity(
            lead_id=lead.id,
            kind=ActivityKind.REQUEST,
            body=details.need or "",
            details={"channel": source, "request_id": request.id, "joined": joined},
            created_at=at,
        )
    )
    db.session.flush()
    record(
        "lead.request_joined" if joined else "lead.created",
        "lead",
        lead.id,
        actor=actor,
        data={
            "reference": lead.reference,
            "request_id": request.id,
            "channel": source,
            "stage": lead.stage,
            "assignee_id": lead.assignee_id,
            "name_sha256": digest(details.name),
            "phone_sha256": digest(details.phone) if details.phone else None,
            "email_sha256": digest(details.email) if details.email else None,
            "need_sha256": digest(details.need) if details.need else None,
            "consents": [consent.proof_summary(p) for p in kept],
        },
    )
    if asks_call:
        start_first_contact(lead, at=at, actor=actor)
    return Received(lead, joined=joined)


def open_lead_of_phone(phone: str) -> Lead | None:
    """The tenant's open lead with this phone, locked (two requests at once from one
    number join one lead)."""
    return db.session.scalars(
        select(Lead)
        .where(Lead.phone == phone, Lead.stage.in_(OPEN_STAGES))
        .order_by(Lead.id)
        .limit(1)
        .with_for_update()
    ).first()


def _allocate_number() -> tuple[int, str, int | None]:
    """The tenant's next lead number and its reference, and who took the last new lead;
    the settings row's lock serialises both (as for ticket numbers)."""
    number, prefix, last = (
        db.session.connection()
        .execute(
            update(TenantSettings.__table__)
            .where(TenantSettings.tenant_id == current_tenant_id())
            .values(next_lead_number=TenantSettings.next_lead_number + 1)
            .returning(
                TenantSettings.next_lead_number,
                TenantSettings.lead_prefix,
                TenantSettings.last_lead_assignee_id,
            )
        )
        .one()
    )
    return number - 1, f"{prefix}-{number - 1}", last


def lead_takers() -> list[User]:
    """The staff who take new leads, in a fixed order (active, not auditors)."""
    return list(
        db.session.scalars(
            select(User)
            .where(User.takes_leads.is_(True), User.active.is_(True), User.role != "auditor")
            .order_by(User.id)
        )
    )


def next_assignee(last_id: int | None) -> int | None:
    """Round robin: the taker after the one who took the last lead (the first, after
    the last or when that one no longer takes leads); None when nobody takes leads."""
    takers = [user.id for user in lead_takers()]
    if not takers:
        return None
    later = [user_id for user_id in takers if last_id is not None and user_id > last_id]
    return later[0] if later else takers[0]


def _new_lead(details: LeadDetails, *, source: Source, source_detail: str | None, at: datetime) -> Lead:
    number, reference, last = _allocate_number()
    assignee_id = next_assignee(last)
    if assignee_id is not None:
        db.session.connection().execute(
            update(TenantSettings.__table__)
            .where(TenantSettings.tenant_id == current_tenant_id())
            .values(last_lead_assignee_id=assignee_id)
        )
    lead = Lead(
        number=number,
        reference=reference,
        stage=Stage.NEW,
        name=details.name,
        company=details.company,
        phone=details.phone,
        email=details.email,
        need=details.need,
        source=source,
        source_detail=source_detail,
        utm_source=details.utm_source,
        utm_medium=details.utm_medium,
        utm_campaign=details.utm_campaign,
        locale=details.locale,
        assignee_id=assignee_id,
        marketing_consent=False,
        failed_attempts=0,
        created_at=at,
        updated_at=at,
    )
    db.session.add(lead)
    db.session.flush()
    return lead


# --- the first-contact clock ------------------------------------------------------------------


def first_contact_clock(lead: Lead) -> Clock | None:
    """The lead's unfinished first-contact clock, if one runs."""
    return next(
        (
            clock
            for clock in clocks.clocks_of("lead", lead.id)
            if clock.metric == Metric.FIRST_CONTACT and clock.state in clocks.UNFINISHED
        ),
        None,
    )


def start_first_contact(lead: Lead, *, at: datetime, actor: Actor) -> Clock:
    """The promise "we call you within N business minutes" (the tenant's setting, 180 by
    default) on its default business calendar; the one already running, if any."""
    clock = first_contact_clock(lead)
    if clock is None:
        clock = clocks.start_clock(
            "lead",
            lead.id,
            Metric.FIRST_CONTACT,
            unit=Unit.BUSINESS_MINUTES,
            target=tenant_settings().first_contact_minutes,
            started_at=at,
            calendar=versions.current(ConfigKind.CALENDAR),
            warn_percent=clocks.REGULATORY_WARN_PERCENT,
        )
        db.session.flush()
        record("clock.started", "lead", lead.id, actor=actor, data={"clocks": [clocks.summary(clock)]})
    lead.first_contact_due_at = clock.due_at if clock.state == ClockState.RUNNING else None
    return clock
