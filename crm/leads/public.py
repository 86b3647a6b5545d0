"""Public lead pages, no account: the hosted free-trial form and its receipt, and the
"stop contacting me" page a lead's secret link opens."""

from math import ceil

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import format_decimal
from flask_babel import gettext as _

from crm.access import client_ip
from crm.audit.service import Actor
from crm.errors import DomainError
from crm.extensions import db
from crm.i18n import page_locale
from crm.leads import consent, intake, pipeline
from crm.leads.forms import ConfirmForm, TrialForm
from crm.leads.models import Lead, Purpose
from crm.notify.models import Automatic
from crm.notify.service import queue_email
from crm.portal.views import FORM_ATTEMPTS_RATE, form_rate, tenant_client_key
from crm.provisioning.service import tenant_settings
from crm.ratelimit import Breach, limit
from crm.webforms import SubmissionTokens, accepted, in_one_transaction, show_error
from tenants import current_tenant
from tenants.ext import URL_PREFIX

bp = Blueprint("leads_public", __name__, url_prefix=URL_PREFIX)

RECEIPT_KEY = "trial_receipt"
UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign")
STOP_POSTS_PER_ADDRESS = "30/hour"


TOKENS = SubmissionTokens("trial-form-submission")


def _render_form(form: TrialForm, **context) -> str:
    settings = tenant_settings()
    return render_template(
        "leads/trial.html",
        form=form,
        settings=settings,
        hours=format_decimal(settings.first_contact_minutes / 60, "#.#"),
        texts=consent.consent_texts(page_locale()),
        **context,
    )


def _refused_for_now(breach: Breach) -> str:
    return _render_form(TrialForm(), rate_limited_minutes=ceil(breach.seconds_left() / 60))


@bp.route("/trial", methods=["GET", "POST"])
@limit(form_rate, key=tenant_client_key, methods=("POST",), counts=accepted, on_breach=_refused_for_now)
@limit(FORM_ATTEMPTS_RATE, key=tenant_client_key, methods=("POST",), on_breach=_refused_for_now)
def trial():
    form = TrialForm()
    if request.method == "GET":
        form.submission_token.data = TOKENS.new()
        for name in UTM_FIELDS:  # carried over from the link the person followed
            form[name].data = request.args.get(name, "")[: intake.MAX_UTM]
        return _render_form(form)
    if form.website.data:
        abort(400)
    nonce = TOKENS.nonce_of(form.submission_token.data or "")
    if nonce is None:
        form.submission_token.data = TOKENS.new()
        flash(_("This form has expired. Please check your details and send it again."), "warning")
        return _render_form(form), 400
    status = 400
    if form.validate():
        details = intake.LeadDetails(
            name=form.name.data,
            phone=form.phone.data,
            email=form.email.data or None,
            company=form.company.data or None,
            need=form.need.data or None,
            utm_source=form.utm_source.data or None,
            utm_medium=form.utm_medium.data or None,
            utm_campaign=form.utm_campaign.data or None,
            locale=page_locale(),
        )

        def submit() -> tuple[int, bool]:
            received = intake.submit_trial_request(
                details,
                consent_contact=form.consent_contact.data,
                consent_marketing=form.consent_marketing.data,
                nonce=nonce,
                ip=client_ip(),
            )
            if not received.repeated and received.lead.email:
                _send_receipt(received.lead)
            return received.lead.number, received.repeated

        try:
            number, _repeated = in_one_transaction(submit)
        except DomainError as error:
            show_error(form, error)
            status = error.status
        else:
            session[RECEIPT_KEY] = {"lead": number}
            return redirect(url_for("leads_public.trial_receipt", number=number))
    return _render_form(form), status


def _send_receipt(lead: Lead) -> None:
    due_at = lead.first_contact_due_at
    body = render_template(
        "emails/lead_receipt.txt",
        lead=lead,
        due_at=due_at,
        stop_link=pipeline.stop_url(lead),
        tenant=current_tenant(),
    )
    queue_email(
        to=lead.email,
        subject=_("Your request %(reference)s", reference=lead.reference),
        body=body,
        locale=lead.locale,
        ticket_id=None,
        actor=Actor("anonymous", None, "trial-form", client_ip()),
        automatic=Automatic.GENERATED,
    )


@bp.route("/trial/receipt/<int:number>")
def trial_receipt(number: int):
    """The receipt; only the browser that sent the form sees it."""
    if (session.get(RECEIPT_KEY) or {}).get("lead") != number:
        abort(404)
    lead = db.session.scalars(db.select(Lead).where(Lead.number == number)).one_or_none()
    if lead is None:
        abort(404)
    return render_template(
        "leads/trial_receipt.html",
        lead=lead,
        due_at=lead.first_contact_due_at,
        stop_link=pipeline.stop_url(lead),
        marketing=lead.marketing_consent,
        Purpose=Purpose,
    )


# --- "stop contacting me" --------------------------------------------------------------------


def _lead_of_stop_token(token: str) -> Lead:
    lead_id = consent.lead_id_of_stop_token(token)
    lead = db.session.get(Lead, lead_id) if lead_id is not None else None
    if lead is None:
        abort(404)
    return lead


@bp.route("/stop/<token>", methods=["GET", "POST"])
@limit(STOP_POSTS_PER_ADDRESS, key=tenant_client_key, methods=("POST",))
def stop(token: str):
    """The page asks for one click (a mail scanner opening the link changes nothing);
    the click puts the number and address on the do-not-contact list at once."""
    lead = _lead_of_stop_token(token)
    form = ConfirmForm()
    if request.method == "POST":
        if not form.validate():
            abort(400)
        in_one_transaction(lambda: pipeline.stop_by_link(lead, ip=client_ip()))
        return render_template("leads/stop.html", form=form, done=True)
    return render_template("leads/stop.html", form=form, done=False)
