"""A ticket's refund page: the applicable policy, the calculator, the decision and its
approval, payouts and outside escalations."""

from datetime import date
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from wtforms import SelectChoice

from crm.access import can, client_ip, requires
from crm.auth import service as auth
from crm.errors import Conflict, DomainError
from crm.extensions import db
from crm.forms import Form
from crm.money import from_minor_units
from crm.policies import service as policies
from crm.policies.models import PolicyVersion
from crm.refunds import ledger, service
from crm.refunds.forms import ApprovalForm, DecisionForm, EscalationForm, EscalationOutcomeForm, PayoutForm
from crm.refunds.labels import (
    BODY_LABELS,
    ESCALATION_OUTCOME_LABELS,
    METHOD_LABELS,
    OUTCOME_LABELS,
    WAIT_LABELS,
    reason_choices,
)
from crm.refunds.models import DecisionStatus
from crm.tickets import resolution
from crm.tickets import service as tickets
from crm.tickets.models import Ticket
from crm.tickets.views import workspace_helpers
from crm.webforms import in_one_transaction, show_error, uploads_of
from tenants import current_tenant
from tenants.ext import URL_PREFIX

bp = Blueprint("refunds", __name__, url_prefix=URL_PREFIX)
# The ticket workspace's labels and formatters, for the badges this page shares with it.
bp.context_processor(workspace_helpers)
FORMS = {
    "decision": DecisionForm,
    "approval": ApprovalForm,
    "payout": PayoutForm,
    "escalation": EscalationForm,
}


def _ticket_or_404(number: int) -> Ticket:
    return tickets.ticket_by_number(number) or abort(404)


def _decision_form(
    ticket: Ticket, form: DecisionForm | None = None, applicable: PolicyVersion | None = None
) -> DecisionForm:
    """The decision form with its choices; a fresh one starts from the applicable version
    and the amount the customer asked for."""
    fresh = form is None
    form = form or DecisionForm(prefix="decision", formdata=None)
    form.version_number.choices = [
        SelectChoice(v.number, _("Version %(n)d", n=v.number)) for v in policies.published()
    ]
    form.reason_code.choices = [SelectChoice("", "—")] + [
        SelectChoice(code, label) for code, label in reason_choices()
    ]
    if fresh:
        form.version_number.data = applicable.number if applicable else None
        if ticket.amount_minor is not None:
            form.paid.data = str(from_minor_units(ticket.amount_minor, ticket.currency))
        # With the purchase date the customer gave, the cooling-off period is checked
        # from the start; the agent changes the day if the customer cancelled earlier.
        form.cancellation_date.data = service.received_on(ticket)
    return form


def _decision_lines(ticket: Ticket, decision) -> list[tuple[str, int, int]]:
    """The proposed arithmetic in the reader's language: recomputed from the inputs kept
    with the decision, and shown only if it gives the same amount (else as stored)."""
    stored = [tuple(line) for line in decision.calculation["lines"]]
    saved = decision.calculation["inputs"]
    inputs = service.Inputs(
        paid=str(from_minor_units(saved["paid_minor"], decision.currency)),
        cancellation_date=date.fromisoformat(saved["cancellation_date"])
        if saved["cancellation_date"]
        else None,
        service_days_total=saved["service_days_total"],
        service_days_used=saved["service_days_used"],
        balance_used=saved["balance_used"],
    )
    try:
        again = service.calculate(ticket, policies.version_by_id(decision.policy_version_id), inputs)
    except DomainError:
        return stored
    if again.suggested_minor != decision.suggested_minor:
        return stored
    return [(line.text, line.amount_minor, line.total_minor) for line in again.lines]


def _render(ticket: Ticket, status: int = 200, *, calculation=None, **bound: Form):
    applicable = service.applicable_version(ticket)
    decision_form = _decision_form(ticket, bound.get("decision"), applicable)
    forms = {name: bound.get(name) or form(prefix=name, formdata=None) for name, form in FORMS.items()}
    forms["decision"] = decision_form
    balance = ledger.balance(ticket.id)
    decision = balance.decision
    return render_template(
        "refunds/ticket.html",
        ticket=ticket,
        forms=forms,
        balance=balance,
        decision=decision,
        decision_version=policies.version_by_id(decision.policy_version_id) if decision else None,
        decision_lines=_decision_lines(ticket, decision) if decision else [],
        applicable=applicable,
        pinned=policies.version_by_id(ticket.policy_version_id),
        calculation=calculation,
        payouts=service.payouts_of(ticket),
        escalations=service.escalations_of(ticket),
        staff={user.id: user.display_name for user in auth.list_users()},
        outcome_labels=OUTCOME_LABELS,
        reasons=dict(reason_choices()),
        body_labels=BODY_LABELS,
        escalation_outcome_labels=ESCALATION_OUTCOME_LABELS,
        outcome_form=EscalationOutcomeForm(formdata=None),
        method_labels=METHOD_LABELS,
        may_decide=can(current_user, "tickets.work"),
        may_approve=service.may_approve(ticket, decision, current_user),
        review_needed=ticket.needs_manager and not resolution.is_reviewer(ticket, current_user),
        Pending=DecisionStatus.PENDING_APPROVAL,
    ), status


def _refused(ticket: Ticket, name: str, form: Form, error: DomainError, **extra):
    db.session.rollback()  # a no-op after in_one_transaction, which rolled back already
    if isinstance(error, Conflict):
        # About the ticket's state, whose form may no longer be on the page (a denial has
        # no payout form; a decision waiting for approval, no decision form): say it on top.
        flash(error.message, "danger")
    else:
        show_error(form, error)
    return _render(ticket, error.status, **{name: form}, **extra)


@bp.route("/tickets/<int:number>/refund")
@requires("tickets.view")
def page(number: int):
    return _render(_ticket_or_404(number))


def _proposal(form: DecisionForm) -> service.Proposal:
    return service.Proposal(
        version_number=form.version_number.data or 0,
        outcome=form.outcome.data,
        reason_code=form.reason_code.data,
        clause=form.clause.data,
        amount=(form.amount.data or "").strip(),
        inputs=form.inputs(),
        version_reason=form.version_reason.data,
        differs_reason=form.differs_reason.data,
        note=form.note.data,
    )


@bp.route("/tickets/<int:number>/refund", methods=["POST"])
@requires("tickets.work")
def decide(number: int):
    """One form, several steps (``action``): "calculate" shows the arithmetic; "preview"
    shows what recording the decision will do (the final response the customer will get,
    or that it waits for a manager); from the preview, "propose" records it if it still
    does what was shown, and "edit" goes back to the form as typed. "propose" without a
    preview shows the preview: nothing reaches the customer unseen."""
    ticket = _ticket_or_404(number)
    form = _decision_form(ticket, DecisionForm(prefix="decision"))
    action = request.form.get("action")
    if not form.validate():
        return _render(ticket, 400, decision=form)
    try:
        version = policies.require(form.version_number.data or 0, published_only=True)
        calculation = service.calculate(ticket, version, form.inputs())
    except DomainError as error:
        return _refused(ticket, "decision", form, error)
    if action == "propose" and form.previewed.data:
        try:
            waits = in_one_transaction(
                lambda: (
                    service.propose(
                        ticket,
                        _proposal(form),
                        user=current_user,
                        ip=client_ip(),
                        previewed_sha256=form.previewed.data,
                    ).status
                    == DecisionStatus.PENDING_APPROVAL
                )
            )
        except DomainError as error:
            form.previewed.data = ""
            return _refused(ticket, "decision", form, error, calculation=calculation)
        flash(
            _("The decision waits for a manager's approval.")
            if waits
            else _("Decision recorded; the final response has been sent to the customer."),
            "success",
        )
        return redirect(url_for(".page", number=number))
    form.previewed.data = ""
    if action not in ("preview", "propose"):  # "calculate", "edit"
        return _render(ticket, calculation=calculation, decision=form)
    try:
        preview = service.preview_decision(ticket, _proposal(form), user=current_user)
    except DomainError as error:
        return _refused(ticket, "decision", form, error, calculation=calculation)
    form.previewed.data = preview.sha256
    return render_template(
        "refunds/preview.html",
        ticket=ticket,
        form=form,
        preview=preview,
        outcome_labels=OUTCOME_LABELS,
        reasons=dict(reason_choices()),
        why_labels=WAIT_LABELS,
    )


@bp.route("/tickets/<int:number>/refund/<any(approve, reject):verdict>", methods=["POST"])
@requires("tickets.work")
def second_person(number: int, verdict: str):
    """Sending back tells the customer nothing and is done at once. Approving sends the
    final response: the first POST previews it, "send" from the preview approves it."""
    ticket = _ticket_or_404(number)
    form = ApprovalForm(prefix="approval")
    action = request.form.get("action")
    if not form.validate():
        return _render(ticket, 400, approval=form)
    if verdict == "approve" and action == "edit":
        form.previewed.data = ""
        return _render(ticket, approval=form)
    try:
        if verdict == "reject":
            service.reject(ticket, form.note.data, user=current_user, ip=client_ip())
        elif action == "send" and form.previewed.data:
            service.approve(
                ticket,
                user=current_user,
                ip=client_ip(),
                note=form.note.data,
                previewed_sha256=form.previewed.data,
            )
        else:
            preview = service.preview_approval(ticket, user=current_user)
            form.previewed.data = preview.sha256
            return render_template("refunds/approval_preview.html", ticket=ticket, form=form, preview=preview)
    except DomainError as error:
        form.previewed.data = ""
        return _refused(ticket, "approval", form, error)
    db.session.commit()
    flash(
        _("Approved; the final response has been sent to the customer.")
        if verdict == "approve"
        else _("The decision is sent back to the agent."),
        "success",
    )
    return redirect(url_for(".page", number=number))


@bp.route("/tickets/<int:number>/payouts", methods=["POST"])
@requires("tickets.work")
def payout(number: int):
    ticket = _ticket_or_404(number)
    form = PayoutForm(prefix="payout")
    if not form.validate():
        return _render(ticket, 400, payout=form)
    receipts = uploads_of("payout-receipt")
    entry = service.PayoutEntry(
        amount=form.amount.data,
        method=form.method.data,
        reference=form.reference.data,
        paid_at=form.paid_at.data.replace(tzinfo=ZoneInfo(current_tenant().timezone)),
        receipt=receipts[0] if receipts else None,
    )
    try:
        in_one_transaction(
            lambda: service.record_payout(ticket, entry, user=current_user, ip=client_ip()),
            done=_("Payout recorded."),
        )
    except DomainError as error:
        return _refused(ticket, "payout", form, error)
    return redirect(url_for(".page", number=number))


@bp.route("/tickets/<int:number>/escalations/<int:escalation_id>/outcome", methods=["POST"])
@requires("tickets.work")
def escalation_outcome(number: int, escalation_id: int):
    ticket = _ticket_or_404(number)
    form = EscalationOutcomeForm()
    if not form.validate():
        flash(_("Choose what the body concluded and the day it did."), "danger")
        return _render(ticket, 400)
    decision = service.BodyDecision(
        escalation_id, form.outcome.data, form.decided_on.data, form.note.data or ""
    )
    try:
        in_one_transaction(
            lambda: service.record_escalation_outcome(ticket, decision, user=current_user, ip=client_ip()),
            done=_("The body's conclusion is recorded."),
        )
    except DomainError as error:
        flash(error.message, "danger")
        return _render(ticket, error.status)
    return redirect(url_for(".page", number=number))


@bp.route("/tickets/<int:number>/escalations", methods=["POST"])
@requires("tickets.work")
def escalation(number: int):
    ticket = _ticket_or_404(number)
    form = EscalationForm(prefix="escalation")
    if not form.validate():
        return _render(ticket, 400, escalation=form)
    referral = service.Referral(
        form.body.data, form.case_number.data, form.received_on.data, form.deadline_on.data
    )
    try:
        in_one_transaction(
            lambda: service.record_escalation(ticket, referral, user=current_user, ip=client_ip()),
            done=_("Escalation recorded; its deadline is on the ticket's clocks."),
        )
    except DomainError as error:
        return _refused(ticket, "escalation", form, error)
    return redirect(url_for(".page", number=number))
