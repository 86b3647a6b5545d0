"""The API's endpoints under /t/<slug>/api/v1/: tickets, leads, customers, the
do-not-contact list and the audit trail, as JSON, each behind its scope."""

from dataclasses import asdict

from flask import Blueprint, Response, g, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from crm.api import calls as call_endpoints
from crm.api import openapi, schemas
from crm.api.http import (
    api_call,
    body_and_files,
    body_of,
    etag_of,
    field_problem,
    idempotent,
    json_response,
    problem,
)
from crm.audit import checkpoints, signing
from crm.audit.models import AuditEvent
from crm.customers.models import Customer
from crm.customers.service import normalise_phone
from crm.dnc import service as dnc
from crm.dnc.models import DoNotContact
from crm.errors import DomainError
from crm.extensions import csrf, db
from crm.leads import consent, intake, listing, pipeline
from crm.leads.models import Lead, Purpose, Source
from crm.money import from_minor_units
from crm.policies import service as policies
from crm.provisioning.service import tenant_settings
from crm.refunds import ledger
from crm.refunds import service as refunds
from crm.refunds.models import Payout, RefundDecision
from crm.reports import service as report_service
from crm.reports.forms import read_period
from crm.reports.tables import as_document
from crm.sla.clocks import clocks_of
from crm.tickets import queue, search
from crm.tickets import service as tickets
from crm.tickets.forms import QueueForm
from crm.tickets.models import Ticket
from tenants import current_tenant
from tenants.ext import URL_PREFIX

bp = Blueprint("api", __name__, url_prefix=URL_PREFIX + "/api/v1")
bp.register_blueprint(call_endpoints.bp)
csrf.exempt(bp)  # keys, not cookies: there is no session to forge a request with
csrf.exempt(call_endpoints.bp)
AUDIT_PAGE = 500


# --- tickets -------------------------------------------------------------------------------------


def ticket_out(ticket: Ticket) -> dict:
    amount = (
        {"amount": str(from_minor_units(ticket.amount_minor, ticket.currency)), "currency": ticket.currency}
        if ticket.amount_minor is not None
        else None
    )
    return schemas.TicketOut(
        number=ticket.number,
        reference=ticket.reference,
        kind=ticket.kind,
        channel=ticket.channel,
        status=ticket.status,
        priority=ticket.priority,
        reason=ticket.reason,
        requester=schemas.Requester(**ticket.requester.__dict__),
        assignee_id=ticket.assignee_id,
        amount=amount,
        purchase_date=ticket.purchase_date,
        created_at=ticket.created_at,
        received_at=ticket.receipt_time,
        respond_by=ticket.respond_by,
        due_at=ticket.due_at,
        resolved_at=ticket.resolved_at,
        updated_at=ticket.updated_at,
    ).model_dump(mode="json")


def _ticket_or_404(number: int) -> Ticket | None:
    return tickets.ticket_by_number(number) if 0 < number < 2**63 else None


@bp.get("/tickets")
@api_call("tickets:read")
def list_tickets():
    """The queue's views, filters and search, newest first unless ``sort`` says otherwise,
    a page at a time: ``next`` is the following page's URL."""
    form = QueueForm(request.args, meta={"csrf": False})
    form.set_assignees(tickets.list_assignable_users())
    if not form.validate():
        errors = [{"field": name, "message": str(messages[0])} for name, messages in form.errors.items()]
        return problem(400, _("The query is not valid."), errors=errors)
    query = form.to_query()
    page = queue.queue_page(query, user_id=0, country=tenant_settings().country, after=form.cursor())
    snippets = search.snippets([ticket.id for ticket in page.tickets], query.q)
    kept = {key: value for key, value in request.args.items() if key != "after"}
    next_url = (
        url_for(".list_tickets", **kept, after=page.next_cursor.encode(), _external=False)
        if page.next_cursor
        else None
    )
    items = [
        {**ticket_out(t), "snippet": asdict(snippets[t.id]) if t.id in snippets else None}
        for t in page.tickets
    ]
    return json_response({"items": items, "next": next_url})


@bp.post("/tickets")
@api_call("tickets:write")
def create_ticket():
    """A refund request, by the hosted form's rules; 201 with the ticket. As JSON, or as
    multipart/form-data with the same fields and the files as ``attachments`` parts."""
    data, files = body_and_files(schemas.TicketIn, "attachments")

    def create():
        submission = tickets.submit_refund_request(
            tickets.RefundRequest(
                customer=tickets.CustomerDetails(
                    name=data.name, phone=data.phone, email=data.email, account_ref=data.account_ref
                ),
                reason=data.reason,
                description=data.description,
                purchase_date=data.purchase_date,
                amount=data.amount,
                currency=data.currency,
                uploads=files,
            ),
            nonce=tickets.new_nonce(),
            ip=g.api_actor.ip,
            via=g.api_actor,
        )
        ticket = submission.ticket
        return ticket_out(ticket), url_for(".get_ticket", number=ticket.number)

    return idempotent(create)


@bp.get("/tickets/<int:number>")
@api_call("tickets:read")
def get_ticket(number: int):
    ticket = _ticket_or_404(number)
    if ticket is None:
        return problem(404, _("Not found."))
    detail = {
        **ticket_out(ticket),
        "thread": [_entry_out(entry) for entry in tickets.thread(ticket, public_only=False)],
        "clocks": [
            schemas.ClockOut.model_validate(clock, from_attributes=True).model_dump(mode="json")
            for clock in clocks_of("ticket", ticket.id)
        ],
    }
    return json_response(detail, headers={"ETag": ticket_etag(ticket)})


def _entry_out(entry) -> dict:
    return schemas.EntryOut(
        id=entry.id,
        kind=entry.kind,
        author_kind=entry.author_kind,
        body=entry.body,
        public=entry.is_public,
        created_at=entry.created_at,
    ).model_dump(mode="json")


def ticket_etag(ticket: Ticket) -> str:
    return etag_of(ticket.id, ticket.updated_at, ticket.status, ticket.assignee_id, ticket.priority)


def _write_message(number: int, write) -> Response:
    ticket = _ticket_or_404(number)
    if ticket is None:
        return problem(404, _("Not found."))
    data = body_of(schemas.MessageIn)
    entry = write(ticket, data.body, user=None, ip=g.api_actor.ip, actor=g.api_actor)
    db.session.commit()
    return json_response(_entry_out(entry), 201)


@bp.post("/tickets/<int:number>/replies")
@api_call("tickets:write")
def reply_to_ticket(number: int):
    """A public reply: on the tracking page and emailed to the customer."""
    return _write_message(number, tickets.reply)


@bp.post("/tickets/<int:number>/notes")
@api_call("tickets:write")
def note_on_ticket(number: int):
    """An internal note: staff only."""
    return _write_message(number, tickets.add_note)


def _unless_unchanged(current: str, missing: str, stale: str) -> Response | None:
    """An update's precondition: If-Match must carry the ETag the record has now (428
    without it, 412 when the record changed since it was read)."""
    wanted = request.headers.get("If-Match")
    if not wanted:
        return problem(428, missing)
    return problem(412, stale) if wanted != current else None


@bp.patch("/tickets/<int:number>")
@api_call("tickets:write")
def update_ticket(number: int):
    """Assign, prioritise, reopen or close; needs ``If-Match`` with the ticket's ETag, so
    two systems never overwrite each other silently."""
    ticket = _ticket_or_404(number)
    if ticket is None:
        return problem(404, _("Not found."))
    refused = _unless_unchanged(
        ticket_etag(ticket),
        _("Send If-Match with the ticket's ETag."),
        _("The ticket changed since you read it: read it again."),
    )
    if refused:
        return refused
    data = body_of(schemas.TicketPatch)
    ip, actor = g.api_actor.ip, g.api_actor
    if data.unassign or data.assignee_id is not None:
        tickets.assign(ticket, None if data.unassign else data.assignee_id, user=None, ip=ip, actor=actor)
    if data.priority:
        tickets.set_priority(ticket, data.priority, user=None, ip=ip, actor=actor)
    if data.status == "open" and ticket.status != "open":
        tickets.reopen(ticket, user=None, ip=ip, actor=actor)
    elif data.status == "closed":
        tickets.close(ticket, user=None, ip=ip, actor=actor)
    db.session.commit()
    return json_response(ticket_out(ticket), headers={"ETag": ticket_etag(ticket)})


@bp.get("/tickets/<int:number>/refund")
@api_call("tickets:read")
def ticket_refund(number: int):
    """The ticket's refund decisions (each with its status), payouts and escalations, so
    billing can see what is owed and confirm what went out."""
    ticket = _ticket_or_404(number)
    if ticket is None:
        return problem(404, _("Not found."))
    decisions = db.session.scalars(
        select(RefundDecision).where(RefundDecision.ticket_id == ticket.id).order_by(RefundDecision.id)
    )
    return json_response(
        {
            "ticket": ticket.reference,
            "decisions": [
                {
                    "id": decision.id,
                    "outcome": decision.outcome,
                    "status": decision.status,
                    "reason_code": decision.reason_code,
                    "clause": decision.clause,
                    "amount": _money(decision.amount_minor, decision.currency),
                    "policy_version_id": decision.policy_version_id,
                    "proposed_at": decision.proposed_at,
                    "decided_at": decision.decided_at,
                }
                for decision in decisions
            ],
            "payouts": [_payout_out(payout, ticket.currency) for payout in refunds.payouts_of(ticket)],
            "escalations": [
                {"id": e.id, "body": e.body, "received_on": e.received_on, "deadline_on": e.deadline_on}
                for e in refunds.escalations_of(ticket)
            ],
        }
    )


@bp.post("/tickets/<int:number>/payouts")
@api_call("tickets:write")
def record_payout(number: int):
    """Billing confirms money went out for the ticket's approved refund; the payout clock
    is met when the refund is paid in full."""
    ticket = _ticket_or_404(number)
    if ticket is None:
        return problem(404, _("Not found."))
    data = body_of(schemas.PayoutIn)

    def create():
        payout = refunds.record_payout(
            ticket,
            refunds.PayoutEntry(
                amount=data.amount, method=data.method, reference=data.reference, paid_at=data.paid_at
            ),
            user=None,
            ip=g.api_actor.ip,
            actor=g.api_actor,
        )
        balance = ledger.balance(ticket.id)
        body = schemas.PayoutOut(
            **_payout_out(payout, ticket.currency), paid_in_full=balance.owed_minor == 0
        ).model_dump(mode="json")
        return body, url_for(".ticket_refund", number=ticket.number)

    return idempotent(create)


def _payout_out(payout: Payout, currency: str) -> dict:
    return {
        "id": payout.id,
        "decision_id": payout.decision_id,
        "amount": _money(payout.amount_minor, currency),
        "method": payout.method,
        "reference": payout.reference,
        "paid_at": payout.paid_at,
    }


def _money(minor: int, currency: str) -> dict:
    return {"amount": str(from_minor_units(minor, currency)), "currency": currency}


@bp.get("/policies")
@api_call("tickets:read")
def published_policies():
    """The published refund policy versions, newest first, with their texts and terms."""
    return json_response(
        {
            "items": [
                {
                    "number": version.number,
                    "effective_from": version.effective_from,
                    "published_at": version.published_at,
                    "sha256": version.sha256,
                    "texts": version.texts,
                    "terms": version.terms,
                }
                for version in policies.published()
            ]
        }
    )


# --- customers -----------------------------------------------------------------------------------


def customer_out(customer: Customer) -> dict:
    return {
        "id": customer.id,
        "name": customer.name,
        "phone": customer.phone,
        "email": customer.email,
        "account_ref": customer.account_ref,
        "created_at": customer.created_at.isoformat(),
    }


@bp.get("/customers")
@api_call("tickets:read")
def find_customers():
    """Look a customer up by ``phone`` (as typed, or E.164) or ``email``."""
    phone, email = request.args.get("phone", "")[:40], request.args.get("email", "")[:254].lower()
    if not phone and not email:
        return problem(400, _("Give a phone number or an email address."))
    conditions = []
    if phone:
        try:
            conditions.append(Customer.phone == normalise_phone(phone, tenant_settings().country))
        except DomainError as error:
            return field_problem("phone", str(error.message))
    if email:
        conditions.append(Customer.email == email)
    found = db.session.scalars(select(Customer).where(*conditions).order_by(Customer.id).limit(50))
    return json_response({"items": [customer_out(c) for c in found]})


@bp.get("/customers/<int:customer_id>")
@api_call("tickets:read")
def get_customer(customer_id: int):
    customer = db.session.get(Customer, customer_id) if 0 < customer_id < 2**63 else None
    if customer is None:
        return problem(404, _("Not found."))
    leads = db.session.scalars(select(Lead).where(Lead.customer_id == customer.id).order_by(Lead.id))
    return json_response(
        {
            **customer_out(customer),
            "tickets": [ticket_out(t) for t in tickets.customer_tickets(customer.id)],
            "leads": [lead_out(lead) for lead in leads],
        }
    )


# --- leads ---------------------------------------------------------------------------------------


def lead_out(lead: Lead, *, joined: bool = False) -> dict:
    allowed = consent.permission(lead)
    return schemas.LeadOut(
        reference=lead.reference,
        stage=lead.stage,
        name=lead.name,
        company=lead.company,
        phone=lead.phone,
        email=lead.email,
        source=lead.source,
        assignee_id=lead.assignee_id,
        contact_allowed=allowed.call,
        marketing_allowed=allowed.marketing,
        first_contact_due_at=lead.first_contact_due_at,
        first_contacted_at=lead.first_contacted_at,
        created_at=lead.created_at,
        joined=joined,
    ).model_dump(mode="json")


def _proofs(given: schemas.ConsentIn) -> list:
    """The consent boxes as the caller's own form showed them, kept as proof."""
    if given.contact and not (given.text or given.evidence_ref):
        raise DomainError(
            _("Give the contact box's exact text, or where the proof of consent is."), "consent.text"
        )
    if given.marketing and not (given.marketing_text or given.evidence_ref):
        raise DomainError(
            _("Give the marketing box's exact text, or where its proof is."), "consent.marketing_text"
        )
    version = given.text_version or "api"
    proofs = []
    if given.contact:
        text = consent.ConsentText(Purpose.CONTACT, given.text, version) if given.text else None
        proofs.append((text, True, None if text else given.evidence_ref))
    if given.marketing_text or given.marketing:
        text = (
            consent.ConsentText(Purpose.MARKETING, given.marketing_text, version)
            if given.marketing_text
            else None
        )
        proofs.append((text, given.marketing, None if text else given.evidence_ref))
    return proofs


@bp.post("/leads")
@api_call("leads:write")
def create_lead():
    """A request to be called from the caller's own form; joins the open lead of the
    same phone. Without a contact consent the lead is kept, not to be called."""
    data = body_of(schemas.LeadIn)

    def create():
        received = intake.receive(
            intake.LeadDetails(
                name=data.name,
                phone=data.phone,
                email=data.email,
                company=data.company,
                need=data.need,
                utm_source=data.utm_source,
                utm_medium=data.utm_medium,
                utm_campaign=data.utm_campaign,
            ),
            source=Source.API,
            actor=g.api_actor,
            ip=g.api_actor.ip,
            proofs=_proofs(data.consent),
        )
        lead = received.lead
        return lead_out(lead, joined=received.joined), url_for(".get_lead", reference=lead.reference)

    return idempotent(create)


@bp.get("/leads")
@api_call("leads:read")
def list_leads():
    view = request.args.get("view", "all")
    if view not in listing.VIEWS or view == "mine":
        return field_problem("view", "new, overdue or all")
    try:
        after = queue.Cursor.decode(request.args["after"]) if request.args.get("after") else None
    except ValueError:
        return field_problem("after", "not a cursor")
    query = listing.LeadQuery(view=view, q=request.args.get("q", "")[:200])
    page = listing.lead_page(query, user_id=0, country=tenant_settings().country, after=after)
    kept = {key: value for key, value in request.args.items() if key != "after"}
    next_url = url_for(".list_leads", **kept, after=page.next_cursor.encode()) if page.next_cursor else None
    return json_response({"items": [lead_out(lead) for lead in page.leads], "next": next_url})


@bp.get("/leads/<reference>")
@api_call("leads:read")
def get_lead(reference: str):
    lead = pipeline.lead_by_reference(reference)
    if lead is None:
        return problem(404, _("Not found."))
    return json_response(lead_out(lead), headers={"ETag": lead_etag(lead)})


@bp.patch("/leads/<reference>")
@api_call("leads:write")
def update_lead(reference: str):
    """Move a lead on (``lost`` takes ``lost_reason``); needs If-Match with its ETag."""
    lead = pipeline.lead_by_reference(reference)
    if lead is None:
        return problem(404, _("Not found."))
    refused = _unless_unchanged(
        lead_etag(lead),
        _("Send If-Match with the lead's ETag."),
        _("The lead changed since you read it: read it again."),
    )
    if refused:
        return refused
    data = body_of(schemas.StageIn)
    pipeline.set_stage(lead, data.stage, user=None, actor=g.api_actor, lost_reason=data.lost_reason)
    db.session.commit()
    return json_response(lead_out(lead), headers={"ETag": lead_etag(lead)})


def lead_etag(lead: Lead) -> str:
    return etag_of(lead.id, lead.updated_at, lead.stage, lead.assignee_id)


@bp.post("/leads/<reference>/calls")
@api_call("leads:write")
def log_lead_call(reference: str):
    """A call with the lead, as a dialer logs it; an outbound call to someone who must not
    be called is refused with the reason."""
    lead = pipeline.lead_by_reference(reference)
    if lead is None:
        return problem(404, _("Not found."))
    data = body_of(schemas.CallIn)
    entry = pipeline.log_call(
        lead,
        pipeline.CallLog(data.outcome, data.direction, data.duration_seconds, data.note or ""),
        user=None,
        actor=g.api_actor,
    )
    db.session.commit()
    return json_response({"activity_id": entry.id, **lead_out(lead)}, 201)


# --- do not contact ------------------------------------------------------------------------------


def entry_out(entry: DoNotContact) -> dict:
    return schemas.DncEntryOut.model_validate(entry, from_attributes=True).model_dump(mode="json")


@bp.get("/dnc/check")
@api_call("dnc:read")
def check_dnc():
    """Before every call: allowed or blocked, with the reason."""
    phone, email = request.args.get("phone", "")[:40], request.args.get("email", "")[:254]
    if not phone and not email:
        return problem(400, _("Give a phone number or an email address."))
    try:
        phone = normalise_phone(phone, tenant_settings().country) if phone else None
    except DomainError as error:
        return field_problem("phone", str(error.message))
    standing = dnc.standing(phone, email or None)
    return json_response(
        {
            "allowed": not standing.listed,
            "reason": standing.entries[0].reason if standing.listed else None,
            "entries": [entry_out(entry) for entry in standing.entries],
        }
    )


@bp.post("/dnc")
@api_call("dnc:write")
def add_dnc():
    data = body_of(schemas.DncIn)
    if bool(data.phone) == bool(data.email):
        raise DomainError(_("Give a phone number or an email address."), "phone")

    def create():
        kind, value = ("phone", data.phone) if data.phone else ("email", data.email)
        entry, _new = dnc.add_entry(kind, value, reason=data.reason, source=data.source, actor=g.api_actor)
        return entry_out(entry), None

    return idempotent(create)


@bp.delete("/dnc/<int:entry_id>")
@api_call("dnc:write")
def remove_dnc(entry_id: int):
    """Take an entry off the list, with the reason (audited, as the key)."""
    entry = dnc.entry_by_id(entry_id) if 0 < entry_id < 2**63 else None
    if entry is None or entry.removed_at is not None:
        return problem(404, _("Not found."))
    data = body_of(schemas.DncRemoveIn)
    dnc.remove_by_key(entry, reason=data.reason, actor=g.api_actor)
    db.session.commit()
    return json_response(entry_out(entry))


# --- the audit trail -----------------------------------------------------------------------------


@bp.get("/audit/events")
@api_call("audit:read")
def audit_events():
    """Events by sequence number: ``from`` (default 1) to ``to``, at most 500 a page."""
    try:
        first = int(request.args.get("from", "1"))
        last = int(request.args.get("to", str(2**62)))
    except ValueError:
        return field_problem("from", "an integer")
    if not (1 <= first < 2**62 and 1 <= last < 2**63):
        return field_problem("from", "out of range")
    rows = list(
        db.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.seq >= first, AuditEvent.seq <= last)
            .order_by(AuditEvent.seq)
            .limit(AUDIT_PAGE + 1)
        )
    )
    items = [
        schemas.AuditEventOut.model_validate(event, from_attributes=True).model_dump(mode="json")
        for event in rows[:AUDIT_PAGE]
    ]
    more = len(rows) > AUDIT_PAGE
    next_url = url_for(".audit_events", **{"from": rows[AUDIT_PAGE].seq, "to": last}) if more else None
    return json_response({"items": items, "next": next_url})


@bp.get("/audit/checkpoints")
@api_call("audit:read")
def audit_checkpoints():
    """The chain's signed checkpoints, newest first, each as it was signed and mailed to
    the witnesses, with the public keys that verify their signatures."""
    return json_response(
        {
            "items": [checkpoints.document(c, current_tenant().slug) for c in checkpoints.listed()],
            "keys": signing.current_key().published()["keys"],
        }
    )


# --- reports -------------------------------------------------------------------------------------


@bp.get("/reports/<name>")
@api_call("reports:read")
def report(name: str):
    """A manager report (sla, complaints, refunds, leads, agents) for a period: the page's
    period picker and filters as query parameters, its tables as JSON."""
    if name not in report_service.REPORTS:
        return problem(404, _("Not found."))
    form, period = read_period(request.args)
    if period is None:
        errors = [{"field": field, "message": str(messages[0])} for field, messages in form.errors.items()]
        return problem(400, _("The query is not valid."), errors=errors)
    tables = report_service.report_tables(
        name, period, filters=form.filters(), group_by=form.by.data, linked=True
    )
    return json_response(as_document(tables, period))


# --- the description ------------------------------------------------------------------------------


@bp.get("/openapi.json")
def openapi_document():
    """The OpenAPI 3.1 document (public: it describes, it does not disclose)."""
    return json_response(openapi.document(url_for(".list_tickets", _external=False).rsplit("/tickets", 1)[0]))


@bp.get("/docs")
def reference():
    """The human-readable reference, rendered here from the same document (no CDN)."""
    return render_template(
        "api/reference.html", doc=openapi.document(url_for(".openapi_document").rsplit("/", 1)[0])
    )
