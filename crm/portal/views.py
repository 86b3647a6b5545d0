"""Public pages, no account: the tenant's hosted refund form and receipt, and the
customer's tracking page reached by their secret link."""

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
from flask_babel import gettext as _

from crm.access import client_ip
from crm.errors import Conflict, DomainError
from crm.files.storage import send_attachment
from crm.i18n import page_locale
from crm.policies import service as policies
from crm.portal.forms import ConfirmForm, CustomerReplyForm, NotSatisfiedForm, RefundForm
from crm.provisioning.service import accepted_currencies, tenant_settings
from crm.ratelimit import Breach, limit
from crm.sla.clocks import clocks_of
from crm.sla.explain import public_deadlines
from crm.tickets import service as tickets
from crm.tickets.links import token_digest, tracking_url
from crm.tickets.models import Status
from crm.webforms import SubmissionTokens, accepted, in_one_transaction, show_error, uploads_of
from tenants import current_tenant
from tenants.ext import URL_PREFIX

bp = Blueprint("portal", __name__, url_prefix=URL_PREFIX)

RECEIPT_KEY = "refund_receipt"
# Every post of the form from one address, accepted or not: against floods, not people.
FORM_ATTEMPTS_RATE = "60/hour"
# The tracking pages, per link and per address: reads, and what changes a ticket.
TRACKING_READS_PER_LINK = "60/minute"
TRACKING_READS_PER_ADDRESS = "120/minute"
TRACKING_POSTS_PER_LINK = "20/hour"
TRACKING_POSTS_PER_ADDRESS = "60/hour"


TOKENS = SubmissionTokens("refund-form-submission")


def form_rate() -> str:
    return f"{tenant_settings().form_submissions_per_hour}/hour"


def tenant_client_key() -> str:
    return f"{current_tenant().slug}:{client_ip()}"


def tracking_link_key() -> str:
    """The tracking link a request uses, by digest (the token itself is never a key)."""
    return f"{current_tenant().slug}:{token_digest(request.view_args.get('token', ''))}"


def _form_refused_for_now(breach: Breach) -> str:
    """The hosted form's 429: what they typed, kept (not files), and when to try again."""
    return _render_form(RefundForm(), rate_limited_minutes=ceil(breach.seconds_left() / 60))


def _render_form(form: RefundForm, **context) -> str:
    return render_template(
        "portal/refund.html",
        form=form,
        settings=tenant_settings(),
        currencies=accepted_currencies(),
        **context,
    )


tracking_posts_per_link = limit(TRACKING_POSTS_PER_LINK, key=tracking_link_key, scope="tracking-posts")
tracking_posts_per_address = limit(
    TRACKING_POSTS_PER_ADDRESS, key=tenant_client_key, scope="tracking-posts-address"
)


@bp.route("/refund", methods=["GET", "POST"])
# Only accepted submissions count towards the tenant's hourly limit, so a customer who
# mistypes is not locked out; a separate, generous limit stops floods of bad posts.
@limit(form_rate, key=tenant_client_key, methods=("POST",), counts=accepted, on_breach=_form_refused_for_now)
@limit(FORM_ATTEMPTS_RATE, key=tenant_client_key, methods=("POST",), on_breach=_form_refused_for_now)
def refund():
    form = RefundForm(currency=current_tenant().currency)
    if request.method == "GET":
        form.submission_token.data = TOKENS.new()
        return _render_form(form)
    if form.website.data:
        abort(400)  # the honeypot: people never see this field
    nonce = TOKENS.nonce_of(form.submission_token.data or "")
    if nonce is None:
        form.submission_token.data = TOKENS.new()
        flash(_("This form has expired. Please check your details and send it again."), "warning")
        return _render_form(form), 400
    if form.validate():
        refund_request = tickets.RefundRequest(
            customer=tickets.CustomerDetails(
                name=form.name.data,
                phone=form.phone.data,
                email=form.email.data or None,
                account_ref=form.account_ref.data or None,
                locale=page_locale(),
            ),
            reason=form.reason.data,
            description=form.description.data,
            purchase_date=form.purchase_date.data,
            amount=form.amount.data or None,
            currency=form.currency.data or None,
            uploads=uploads_of("attachments"),
        )

        def submit() -> tuple[int, str | None]:
            submission = tickets.submit_refund_request(refund_request, nonce=nonce, ip=client_ip())
            return submission.ticket.number, submission.tracking_token  # before the commit expires them

        def first_submit() -> int:
            return tickets.repeated_submission(nonce).ticket.number

        try:
            number, token = in_one_transaction(submit)
        except tickets.RepeatedSubmission:  # sent again: the first one's receipt
            number, token = in_one_transaction(first_submit), None
        except DomainError as error:
            show_error(form, error)
            return _render_form(form), error.status
        if token:
            session[RECEIPT_KEY] = {"ticket": number, "token": token}
        return redirect(url_for("portal.receipt", number=number))
    return _render_form(form), 400


@bp.context_processor
def refund_policy() -> dict:
    def pinned_policy(ticket):
        """The refund policy version the ticket was received under (what the customer saw)."""
        return policies.version_by_id(ticket.policy_version_id)

    return {"policy_in_force": policies.in_force, "pinned_policy": pinned_policy}


@bp.route("/refund/receipt/<int:number>")
def receipt(number: int):
    """The receipt. Only the browser that submitted the form holds the tracking link."""
    kept = session.get(RECEIPT_KEY) or {}
    if kept.get("ticket") != number:
        abort(404)
    ticket = tickets.ticket_by_number(number)
    if ticket is None:
        abort(404)
    link = tracking_url(kept["token"])
    deadlines = public_deadlines(clocks_of("ticket", ticket.id))
    return render_template("portal/receipt.html", ticket=ticket, link=link, deadlines=deadlines)


def _ticket_of_link(token: str):
    ticket = tickets.ticket_by_tracking_token(token)
    if ticket is None:
        abort(404)
    return ticket


def _render_tracking(ticket, token: str, status: int = 200, **forms):
    entries = tickets.thread(ticket, public_only=True)
    return (
        render_template(
            "portal/track.html",
            ticket=ticket,
            token=token,
            entries=entries,
            attachments=tickets.attachments_by_entry(ticket),
            authors=tickets.public_author_names(entries),
            reply_form=forms.get("reply_form") or CustomerReplyForm(),
            not_satisfied_form=forms.get("not_satisfied_form") or NotSatisfiedForm(),
            confirm_form=ConfirmForm(),
            merged_into=tickets.merged_into(ticket),
            deadlines=public_deadlines(clocks_of("ticket", ticket.id)),
            Status=Status,
        ),
        status,
    )


@bp.route("/track/<token>")
@limit(TRACKING_READS_PER_LINK, key=tracking_link_key)
@limit(TRACKING_READS_PER_ADDRESS, key=tenant_client_key)
def track(token: str):
    return _render_tracking(_ticket_of_link(token), token)


@bp.route("/track/<token>/reply", methods=["POST"])
@tracking_posts_per_link
@tracking_posts_per_address
def track_reply(token: str):
    ticket = _ticket_of_link(token)
    form = CustomerReplyForm()
    if not form.validate():
        return _render_tracking(ticket, token, 400, reply_form=form)
    try:
        in_one_transaction(
            lambda: tickets.customer_reply(
                ticket, form.body.data, ip=client_ip(), uploads=uploads_of("attachments")
            ),
            done=_("Thank you. Your message has been added to your request."),
        )
    except DomainError as error:
        if isinstance(error, Conflict):  # the request is no longer open: no form to show it on
            flash(error.message, "danger")
        else:
            show_error(form, error)
        return _render_tracking(_ticket_of_link(token), token, error.status, reply_form=form)
    return redirect(url_for("portal.track", token=token))


@bp.route("/track/<token>/withdraw", methods=["POST"])
@tracking_posts_per_link
@tracking_posts_per_address
def track_withdraw(token: str):
    ticket = _ticket_of_link(token)
    try:
        in_one_transaction(
            lambda: tickets.withdraw_by_customer(ticket, ip=client_ip()), done=_("Your request is withdrawn.")
        )
    except DomainError as error:
        flash(error.message, "danger")
        return _render_tracking(_ticket_of_link(token), token, error.status)
    return redirect(url_for("portal.track", token=token))


@bp.route("/track/<token>/not-satisfied", methods=["POST"])
@tracking_posts_per_link
@tracking_posts_per_address
def track_not_satisfied(token: str):
    ticket = _ticket_of_link(token)
    form = NotSatisfiedForm()
    if not form.validate():
        return _render_tracking(ticket, token, 400, not_satisfied_form=form)
    try:
        in_one_transaction(
            lambda: tickets.not_satisfied(ticket, form.body.data, ip=client_ip()),
            done=_("Your request is open again, and a manager will review it."),
        )
    except DomainError as error:
        flash(error.message, "danger")
        return _render_tracking(_ticket_of_link(token), token, error.status)
    return redirect(url_for("portal.track", token=token))


@bp.route("/track/<token>/files/<int:attachment_id>")
@limit(TRACKING_READS_PER_LINK, key=tracking_link_key)
@limit(TRACKING_READS_PER_ADDRESS, key=tenant_client_key)
def track_file(token: str, attachment_id: int):
    """An attachment of a public entry, served as a download of its detected type."""
    ticket = _ticket_of_link(token)
    attachment = tickets.attachment_of_ticket(ticket, attachment_id, public_only=True)
    if attachment is None:
        abort(404)
    return send_attachment(attachment)
