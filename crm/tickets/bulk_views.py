"""The queue's many-ticket actions: a bulk change and its progress page, saved views,
and the CSV export of every ticket the filter matches."""

from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user

from crm.access import Role, current_actor, requires
from crm.auth import service as auth
from crm.errors import DomainError, NotFound
from crm.input_guard import number_or_none
from crm.money import from_minor_units
from crm.provisioning.service import tenant_settings
from crm.tickets import bulk, queue
from crm.tickets.forms import QueueForm
from crm.tickets.labels import KIND_LABELS, PRIORITY_LABELS, REASON_LABELS, STATUS_LABELS
from crm.tickets.models import Ticket
from crm.webforms import in_one_transaction
from tenants import current_tenant, tenant_context
from tenants.ext import URL_PREFIX

bp = Blueprint("bulk", __name__, url_prefix=URL_PREFIX)


def _queue_form(source) -> QueueForm:
    form = QueueForm(source)
    form.set_assignees(user for user in auth.list_users() if user.role != Role.AUDITOR)
    return form


@bp.route("/tickets/bulk", methods=["POST"])
@requires("tickets.work")
def start():
    """Change the chosen tickets, or every ticket the queue's filter matches."""
    back = url_for("tickets.queue", **queue.kept_params(request.form))
    if request.form.get("scope") == "all":
        form = _queue_form(request.form)
        if not form.validate():
            flash(_("The filter is not valid; apply it again."), "danger")
            return redirect(back)
        ticket_ids = bulk.matching_ids(
            form.to_query(), user_id=current_user.id, country=tenant_settings().country
        )
    else:
        numbers = [n for n in map(number_or_none, request.form.getlist("tickets")) if n is not None]
        ticket_ids = bulk.ids_of_numbers(numbers)
    action = request.form.get("action", "")
    # Named apart from the queue's own filters (assignee, priority), which the form carries too.
    value = {"assign": "bulk_assignee", "priority": "bulk_priority", "note": "bulk_note"}.get(action)
    try:
        run = in_one_transaction(
            lambda: bulk.start(
                action,
                request.form.get(value) if value else None,
                ticket_ids,
                user=current_user._get_current_object(),
                actor=current_actor(),
            )
        )
    except DomainError as error:
        flash(error.message, "danger")
        return redirect(back)
    return redirect(url_for(".show", run_id=run.id))


@bp.route("/tickets/bulk/<int:run_id>")
@requires("tickets.work")
def show(run_id: int):
    run = bulk.run_of(run_id)
    if run is None:
        abort(404)
    staff = auth.staff_names()
    return render_template("tickets/bulk_run.html", run=run, staff=staff, priority_labels=PRIORITY_LABELS)


@bp.route("/tickets/views", methods=["POST"])
@requires("tickets.view")
def save_view():
    params = queue.kept_params(request.form)
    try:
        view = in_one_transaction(
            lambda: bulk.save_view(
                current_user._get_current_object(),
                request.form.get("name", ""),
                params,
                actor=current_actor(),
            ),
        )
    except DomainError as error:
        flash(error.message, "danger")
        return redirect(url_for("tickets.queue", **params))
    flash(_("Saved the view “%(name)s”.", name=view.name), "success")
    return redirect(url_for("tickets.queue", **params))


@bp.route("/tickets/views/<int:view_id>/delete", methods=["POST"])
@requires("tickets.view")
def delete_view(view_id: int):
    try:
        in_one_transaction(
            lambda: bulk.delete_view(current_user._get_current_object(), view_id, actor=current_actor()),
            done=_("The view is deleted."),
        )
    except NotFound:
        abort(404)
    return redirect(url_for("tickets.queue"))


@bp.route("/tickets/export.csv")
@requires("tickets.export")
def export_csv():
    """Every ticket the filter matches, as CSV, streamed."""
    form = _queue_form(request.args)
    if not form.validate():
        abort(400)
    kept = queue.kept_params(request.args)
    in_one_transaction(lambda: bulk.record_export(kept, actor=current_actor()))
    zone = ZoneInfo(current_tenant().timezone)
    staff = auth.staff_names()

    def row(ticket: Ticket) -> list:
        return [
            ticket.reference,
            ticket.created_at.astimezone(zone).isoformat(timespec="seconds"),
            STATUS_LABELS.get(ticket.status, ticket.status),
            KIND_LABELS.get(ticket.kind, ticket.kind),
            REASON_LABELS.get(ticket.reason, ticket.reason or ""),
            PRIORITY_LABELS.get(ticket.priority, ticket.priority),
            ticket.requester_name,
            ticket.requester_phone,
            ticket.requester_email,
            ticket.account_ref,
            from_minor_units(ticket.amount_minor, ticket.currency) if ticket.amount_minor is not None else "",
            ticket.currency,
            staff.get(ticket.assignee_id, ""),
            ticket.due_at.astimezone(zone).isoformat(timespec="seconds") if ticket.due_at else "",
        ]

    header = [
        _("Ticket"),
        _("Received"),
        _("Status"),
        _("Kind"),
        _("Reason"),
        _("Priority"),
        _("Customer"),
        _("Phone"),
        _("Email"),
        _("Account"),
        _("Amount"),
        _("Currency"),
        _("Assignee"),
        _("Next due"),
    ]
    query, user_id, country, tenant = (
        form.to_query(),
        current_user.id,
        tenant_settings().country,
        current_tenant(),
    )

    def lines():
        # Sent after the view returns: the tenant is named again for the queries it runs.
        with tenant_context(tenant):
            yield from bulk.csv_lines(query, user_id=user_id, country=country, header=header, row=row)

    name = f"{tenant.slug}-tickets.csv"
    return Response(
        stream_with_context(lines()),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
    )
