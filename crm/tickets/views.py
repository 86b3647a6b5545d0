"""The agent workspace: the ticket queue, a ticket's page and its actions, tickets staff
open themselves, and the managers' canned replies.

Every action is a POST to its own URL: it parses its form, calls one service function,
commits and redirects back to the ticket, or rolls back and shows the ticket again with
the error beside what was typed.
"""

from collections.abc import Callable
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import format_decimal, format_timedelta, ngettext
from flask_babel import gettext as _
from flask_login import current_user
from wtforms import SelectChoice

from crm.access import (
    Role,
    can,
    client_ip,
    current_actor,
    readable_ticket_or_404,
    record_auditor_reading,
    requires,
)
from crm.auth import service as auth
from crm.columns import utcnow
from crm.dnc import service as dnc
from crm.errors import Conflict, DomainError
from crm.files.storage import send_attachment
from crm.forms import Form
from crm.i18n import SUPPORTED_LOCALES
from crm.leads.pipeline import sales_history
from crm.money import format_money
from crm.policies import service as policies
from crm.portal.forms import ConfirmForm
from crm.provisioning.service import tenant_settings
from crm.refunds import service as refunds
from crm.refunds.labels import BODY_LABELS
from crm.sla.clocks import clocks_of
from crm.sla.explain import explain_all, format_late
from crm.sla.labels import METRIC_LABELS
from crm.tickets import bulk, canned, queue, resolution, search, service
from crm.tickets.final_forms import CloseForm, MergeForm, ResolveForm
from crm.tickets.forms import (
    OUTCOME_FILTER_LABELS,
    SORT_LABELS,
    VIEW_LABELS,
    AssignForm,
    CallForm,
    CannedReplyForm,
    NewTicketForm,
    NoteForm,
    PriorityForm,
    QueueForm,
    ReceivedAtForm,
    ReplyForm,
    RequestInfoForm,
)
from crm.tickets.labels import (
    CHANNEL_LABELS,
    DIRECTION_LABELS,
    KIND_LABELS,
    OUTCOME_LABELS,
    PRIORITY_LABELS,
    REASON_LABELS,
    STATUS_LABELS,
)
from crm.tickets.models import Channel, Ticket
from crm.webforms import in_one_transaction, show_error, uploads_of
from tenants import current_tenant
from tenants.ext import URL_PREFIX

bp = Blueprint("tickets", __name__, url_prefix=URL_PREFIX)

LABELS = {
    "status": STATUS_LABELS,
    "kind": KIND_LABELS,
    "channel": CHANNEL_LABELS,
    "priority": PRIORITY_LABELS,
    "reason": REASON_LABELS,
    "direction": DIRECTION_LABELS,
    "outcome": OUTCOME_LABELS,
    "view": VIEW_LABELS,
    "sort": SORT_LABELS,
}
# A ticket page's action forms; each one's name is its field prefix and its slot on the page.
ACTION_FORMS: dict[str, type[Form]] = {
    "reply": ReplyForm,
    "info": RequestInfoForm,
    "note": NoteForm,
    "call": CallForm,
    "resolve": ResolveForm,
    "assign": AssignForm,
    "priority": PriorityForm,
    "merge": MergeForm,
    "received": ReceivedAtForm,
    "close": CloseForm,
}
# The message boxes a canned reply can be inserted into.
CANNED_SLOTS = ("reply", "info", "resolve")


@bp.context_processor
def workspace_helpers() -> dict:
    def label(kind: str, value: str | None) -> str:
        return LABELS[kind].get(value, value) if value else ""

    def age(moment) -> str:
        return format_timedelta(utcnow() - moment, granularity="minute", threshold=1.0)

    def duration(seconds: int) -> str:
        hours, rest = divmod(seconds, 3600)
        return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"

    def file_size(size: int) -> str:
        if size < 1024:
            return ngettext("%(num)d byte", "%(num)d bytes", size)
        if size < 1024 * 1024:
            return _("%(n)s KB", n=format_decimal(size / 1024, "#,##0.#"))
        return _("%(n)s MB", n=format_decimal(size / 1024 / 1024, "#,##0.#"))

    return {
        "label": label,
        "age": age,
        "duration": duration,
        "money": format_money,
        "file_size": file_size,
        "number_of": queue.ticket_number_in,
        "now": utcnow(),
        "format_late": format_late,
        "label_of_metric": lambda metric: METRIC_LABELS.get(metric, metric),
        "outcome_filter_labels": OUTCOME_FILTER_LABELS,
    }


def _me():
    return current_user._get_current_object()


def _ticket_or_404(number: int) -> Ticket:
    return readable_ticket_or_404(service.ticket_by_number(number))


# --- the queue ---------------------------------------------------------------------------


@bp.route("/tickets", endpoint="queue")
@requires("tickets.view")
def ticket_queue():
    form = QueueForm(request.args)
    users = auth.list_users()
    form.set_assignees(user for user in users if user.role != Role.AUDITOR)
    status = 200
    page = queue.QueuePage([], None)
    snippets = {}
    if form.validate():
        query = form.to_query()
        page = queue.queue_page(
            query, user_id=current_user.id, country=tenant_settings().country, after=form.cursor()
        )
        snippets = search.snippets([ticket.id for ticket in page.tickets], query.q)
    else:
        status = 400
    # What the next page, the view tabs and the audit record carry over: the query, not
    # whatever else the address holds.
    kept = queue.kept_params(request.args)
    record_auditor_reading("audit.viewed", "ticket_queue", None, queue.audited_params(kept))
    return (
        render_template(
            "tickets/queue.html",
            form=form,
            tickets=page.tickets,
            snippets=snippets,
            # A view is a preset: switching views keeps the search and the narrower filters.
            view_args={
                key: value for key, value in kept.items() if key not in ("view", "status", "assignee")
            },
            staff={user.id: user.display_name for user in users},
            next_url=url_for(".queue", **kept, after=page.next_cursor.encode()) if page.next_cursor else None,
            first_url=url_for(".queue", **kept) if form.after.data else None,
            views=queue.VIEWS,
            kept=kept,
            saved_views=bulk.views_of(current_user),
            priority_labels=PRIORITY_LABELS,
            assignable=service.list_assignable_users(),
        ),
        status,
    )


# --- a ticket ----------------------------------------------------------------------------


def _render_ticket(ticket: Ticket, status: int = 200, **bound: Form):
    """The ticket page; ``bound`` holds the action form that was just sent, if any, so
    it shows what was typed and its errors."""
    forms: dict[str, Form] = {}
    canned_replies = []
    if can(current_user, "tickets.work"):
        forms = {
            name: bound.get(name) or form(prefix=name, formdata=None) for name, form in ACTION_FORMS.items()
        }
        forms["assign"].set_assignees(service.list_assignable_users())
        if "assign" not in bound:
            forms["assign"].assignee_id.data = str(ticket.assignee_id or "")
        if "priority" not in bound:
            forms["priority"].priority.data = ticket.priority
        if "call" not in bound:
            forms["call"].phone.data = ticket.requester.phone
        canned_replies = [(reply, canned.render_canned(reply, ticket)) for reply in canned.list_canned()]
    return (
        render_template(
            "tickets/show.html",
            ticket=ticket,
            entries=service.thread(ticket, public_only=False),
            attachments=service.attachments_by_entry(ticket),
            staff=auth.staff_names(),
            other_tickets=service.customer_tickets(ticket.customer_id, excluding=ticket.id),
            sales_history=sales_history(ticket.customer_id),
            dnc_standing=dnc.standing(ticket.requester_phone, ticket.requester_email),
            clocks=explain_all(clocks_of("ticket", ticket.id)),
            policy=policies.version_by_id(ticket.policy_version_id),
            forms=forms,
            active=next(iter(bound), None),
            canned_replies=canned_replies,
            confirm_form=ConfirmForm(formdata=None),
        ),
        status,
    )


@bp.route("/tickets/<int:number>")
@requires("tickets.view")
def show(number: int):
    ticket = _ticket_or_404(number)
    bound = {}
    chosen = request.args.get("canned", type=int)
    into = request.args.get("into", "reply")
    if chosen and 0 < chosen < 2**63 and into in CANNED_SLOTS and can(current_user, "tickets.work"):
        # Without JavaScript, the canned-reply picker is a GET that fills the message box.
        reply = canned.canned_by_id(chosen)
        if reply is not None:
            body = canned.render_canned(reply, ticket)
            bound[into] = ACTION_FORMS[into](prefix=into, formdata=None, body=body)
    record_auditor_reading("audit.viewed", "ticket", ticket.id, {"reference": ticket.reference})
    return _render_ticket(ticket, **bound)


@bp.route("/tickets/<int:number>/files/<int:attachment_id>")
@requires("tickets.view")
def download(number: int, attachment_id: int):
    """An attachment of the ticket, as a download of the type its bytes were found to be."""
    ticket = _ticket_or_404(number)
    attachment = service.attachment_of_ticket(ticket, attachment_id)
    if attachment is None:
        abort(404)
    record_auditor_reading(
        "audit.viewed",
        "ticket",
        ticket.id,
        {"reference": ticket.reference, "attachment_id": attachment.id, "sha256": attachment.sha256},
    )
    return send_attachment(attachment)


def _act(
    number: int,
    perform: Callable[[Ticket, Form], object],
    done: Callable[[Ticket], str],
    *,
    slot: str | None = None,
    aliases: dict[str, str] | None = None,
):
    """Run one action from the ticket page: the form in ``slot`` (none for a button),
    one service call, then commit and go back, or roll back and show the error."""
    ticket = _ticket_or_404(number)
    form = ACTION_FORMS[slot](prefix=slot) if slot else ConfirmForm()
    if slot == "assign":
        form.set_assignees(service.list_assignable_users())
    bound = {slot: form} if slot else {}
    if not form.validate():
        return _render_ticket(ticket, 400, **bound)

    def act() -> str:
        perform(ticket, form)
        return done(ticket)  # what to say, read before the commit expires the ticket

    try:
        said = in_one_transaction(act)
    except DomainError as error:
        if isinstance(error, Conflict) or not slot:  # about the ticket's state, not a field
            flash(error.message, "danger")
        else:
            _show_error(form, error, aliases)
        return _render_ticket(_ticket_or_404(number), error.status, **bound)
    flash(said, "success")
    return redirect(url_for(".show", number=number))


def _show_error(form: Form, error: DomainError, aliases: dict[str, str] | None = None) -> None:
    """The error beside its field (``aliases`` maps the service's field names to the
    form's)."""
    field = (aliases or {}).get(error.field, error.field)
    show_error(form, DomainError(error.message, field))


def _sent(message: str) -> Callable[[Ticket], str]:
    def done(ticket: Ticket) -> str:
        if ticket.requester.email:
            return message
        return message + " " + _("The customer has no email address: no email was sent.")

    return done


def _said(message: str) -> Callable[[Ticket], str]:
    return lambda ticket: message


@bp.route("/tickets/<int:number>/reply", methods=["POST"])
@requires("tickets.work")
def reply(number: int):
    def perform(ticket, form):
        uploads = uploads_of("reply-attachments")
        service.reply(ticket, form.body.data, user=_me(), ip=client_ip(), uploads=uploads)

    return _act(number, perform, _sent(_("Reply sent.")), slot="reply")


@bp.route("/tickets/<int:number>/request-info", methods=["POST"])
@requires("tickets.work")
def request_info(number: int):
    def perform(ticket, form):
        service.request_information(ticket, form.body.data, user=_me(), ip=client_ip())

    return _act(number, perform, _sent(_("Request sent. The ticket waits for the customer.")), slot="info")


@bp.route("/tickets/<int:number>/note", methods=["POST"])
@requires("tickets.work")
def note(number: int):
    def perform(ticket, form):
        uploads = uploads_of("note-attachments")
        service.add_note(ticket, form.body.data, user=_me(), ip=client_ip(), uploads=uploads)

    return _act(number, perform, _said(_("Note added.")), slot="note")


@bp.route("/tickets/<int:number>/call", methods=["POST"])
@requires("tickets.work")
def log_call(number: int):
    def perform(ticket, form):
        recordings = uploads_of("call-recording")
        service.log_call(
            ticket,
            direction=form.direction.data,
            number=form.phone.data,
            duration_seconds=form.duration.data,
            outcome=form.outcome.data,
            notes=form.notes.data or "",
            user=_me(),
            ip=client_ip(),
            recording=recordings[0] if recordings else None,
        )

    aliases = {"attachments": "recording", "duration_seconds": "duration"}
    return _act(number, perform, _said(_("Call logged.")), slot="call", aliases=aliases)


@bp.route("/tickets/<int:number>/resolve", methods=["POST"])
@requires("tickets.work")
def resolve(number: int):
    """Two steps. "Preview the final response" (``step=preview``) shows exactly what the
    customer will get; from there "Send final response to the customer" (``step=send``)
    sends it if it is still what was shown, and "Back to edit" returns to the form as typed."""
    step = request.form.get("step")
    form = ResolveForm(prefix="resolve")
    if step == "send" and form.previewed.data:

        def perform(ticket, form):
            service.resolve(
                ticket,
                form.body.data,
                user=_me(),
                ip=client_ip(),
                no_refund_reason=form.no_refund_reason,
                previewed_sha256=form.previewed.data,
            )

        return _act(number, perform, _sent(_("Ticket resolved.")), slot="resolve")
    ticket = _ticket_or_404(number)
    form.previewed.data = ""
    if step == "edit":
        return _render_ticket(ticket, resolve=form)
    if not form.validate():
        return _render_ticket(ticket, 400, resolve=form)
    try:
        preview = resolution.preview_resolution(
            ticket, form.body.data, user=_me(), no_refund_reason=form.no_refund_reason
        )
    except DomainError as error:
        if isinstance(error, Conflict):
            flash(error.message, "danger")
        else:
            _show_error(form, error)
        return _render_ticket(ticket, error.status, resolve=form)
    form.previewed.data = preview.sha256
    return render_template("tickets/resolve_preview.html", ticket=ticket, form=form, preview=preview)


@bp.route("/tickets/<int:number>/assign", methods=["POST"])
@requires("tickets.work")
def assign(number: int):
    def perform(ticket, form):
        assignee_id = int(form.assignee_id.data) if form.assignee_id.data else None
        service.assign(ticket, assignee_id, user=_me(), ip=client_ip())

    return _act(number, perform, _said(_("Assignee saved.")), slot="assign")


@bp.route("/tickets/<int:number>/priority", methods=["POST"])
@requires("tickets.work")
def priority(number: int):
    def perform(ticket, form):
        service.set_priority(ticket, form.priority.data, user=_me(), ip=client_ip())

    return _act(number, perform, _said(_("Priority saved.")), slot="priority")


@bp.route("/tickets/<int:number>/merge", methods=["POST"])
@requires("tickets.work")
def merge(number: int):
    def perform(ticket, form):
        target_number = queue.ticket_number_in(form.target.data)
        target = service.ticket_by_number(target_number) if target_number is not None else None
        if target is None:
            raise DomainError(_("There is no ticket %(reference)s.", reference=form.target.data), "target")
        service.merge(ticket, target, user=_me(), ip=client_ip())

    return _act(number, perform, _said(_("Merged. This ticket is closed.")), slot="merge")


@bp.route("/tickets/<int:number>/close", methods=["POST"])
@requires("tickets.work")
def close(number: int):
    def perform(ticket, form):
        service.close(ticket, user=_me(), ip=client_ip())

    return _act(number, perform, _said(_("Ticket closed.")), slot="close")


@bp.route("/tickets/<int:number>/reopen", methods=["POST"])
@requires("tickets.work")
def reopen(number: int):
    def perform(ticket, form):
        service.reopen(ticket, user=_me(), ip=client_ip())

    return _act(number, perform, _said(_("Ticket reopened.")))


@bp.route("/tickets/<int:number>/received-at", methods=["POST"])
@requires("tickets.work")
def received_at(number: int):
    """The true time of receipt of a request logged late, in the desk's time zone."""

    def perform(ticket, form):
        local = form.received_at.data.replace(tzinfo=ZoneInfo(current_tenant().timezone))
        service.set_receipt_time(ticket, local, form.reason.data, user=_me(), ip=client_ip())

    return _act(
        number,
        perform,
        _said(_("Time of receipt recorded; the regulatory deadlines count from it.")),
        slot="received",
    )


@bp.route("/tickets/<int:number>/withdraw", methods=["POST"])
@requires("tickets.work")
def withdraw(number: int):
    def perform(ticket, form):
        service.withdraw_by_staff(ticket, user=_me(), ip=client_ip())

    return _act(number, perform, _said(_("Recorded: the customer withdrew the request.")))


# --- tickets staff open ------------------------------------------------------------------


@bp.route("/tickets/new", methods=["GET", "POST"])
@requires("tickets.work")
def new_ticket():
    tenant_locale = current_tenant().locale
    form = NewTicketForm(locale=tenant_locale if tenant_locale in SUPPORTED_LOCALES else "zh_CN")
    form.referral_body.choices = [SelectChoice("", "—")] + [
        SelectChoice(body, label) for body, label in BODY_LABELS.items()
    ]
    status = 200
    if form.is_submitted():
        status = 400
        if form.validate():
            try:
                ticket = in_one_transaction(lambda: _open_ticket(form))
            except DomainError as error:
                _show_error(form, error)
                status = error.status
            else:
                flash(_("Ticket %(reference)s opened.", reference=ticket.reference), "success")
                return redirect(url_for(".show", number=ticket.number))
    return render_template("tickets/new.html", form=form), status


def _open_ticket(form: NewTicketForm) -> Ticket:
    ticket = service.open_ticket(
        customer=service.CustomerDetails(
            name=form.name.data,
            phone=form.phone.data or None,
            email=form.email.data or None,
            account_ref=form.account_ref.data or None,
            locale=form.locale.data,
        ),
        kind=form.kind.data,
        channel=form.channel.data,
        priority=form.priority.data,
        reason=form.reason.data or None,
        description=form.description.data,
        user=_me(),
        ip=client_ip(),
    )
    if form.channel.data == Channel.REGULATOR_REFERRAL:
        _record_referral(ticket, form)
    return ticket


def _record_referral(ticket: Ticket, form: NewTicketForm) -> None:
    """A ticket opened from an outside body's referral carries its case and deadline."""
    referral = refunds.Referral(
        form.referral_body.data,
        form.referral_case_number.data,
        form.referral_received_on.data,
        form.referral_deadline_on.data,
    )
    try:
        refunds.record_escalation(ticket, referral, user=_me(), ip=client_ip())
    except DomainError as error:
        raise DomainError(error.message, f"referral_{error.field}") from None


# --- canned replies ----------------------------------------------------------------------


def _canned_or_404(reply_id: int):
    reply = canned.canned_by_id(reply_id)
    if reply is None:
        abort(404)
    return reply


@bp.route("/canned-replies", methods=["GET", "POST"])
@requires("canned.manage")
def canned_replies():
    form = CannedReplyForm()
    status = 200
    if form.is_submitted():
        status = 400
        if form.validate():
            try:
                title = in_one_transaction(
                    lambda: (
                        canned.create_canned(
                            title=form.title.data, body=form.body.data, actor=current_actor()
                        ).title
                    )
                )
            except DomainError as error:
                _show_error(form, error)
                status = error.status
            else:
                flash(_("Canned reply “%(title)s” added.", title=title), "success")
                return redirect(url_for(".canned_replies"))
    return (
        render_template(
            "tickets/canned.html", form=form, replies=canned.list_canned(), confirm_form=ConfirmForm()
        ),
        status,
    )


@bp.route("/canned-replies/<int:reply_id>", methods=["GET", "POST"])
@requires("canned.manage")
def edit_canned(reply_id: int):
    reply = _canned_or_404(reply_id)
    form = CannedReplyForm(obj=reply)
    status = 200
    if form.is_submitted():
        status = 400
        if form.validate():
            try:
                in_one_transaction(
                    lambda: canned.update_canned(
                        reply, title=form.title.data, body=form.body.data, actor=current_actor()
                    ),
                    done=_("Saved."),
                )
            except DomainError as error:
                _show_error(form, error)
                status = error.status
                reply = _canned_or_404(reply_id)
            else:
                return redirect(url_for(".canned_replies"))
    return render_template("tickets/edit_canned.html", form=form, reply=reply), status


@bp.route("/canned-replies/<int:reply_id>/delete", methods=["POST"])
@requires("canned.manage")
def delete_canned(reply_id: int):
    reply = _canned_or_404(reply_id)
    title = reply.title
    in_one_transaction(
        lambda: canned.delete_canned(reply, actor=current_actor()),
        done=_("Canned reply “%(title)s” deleted.", title=title),
    )
    return redirect(url_for(".canned_replies"))
