"""The audit page: the tenant's chain, newest first, with filters."""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from crm.access import can, current_actor, record_auditor_reading, requires
from crm.audit import checkpoints, service
from crm.audit.chain import canonical_json, digest
from crm.audit.forms import AuditFilterForm, WitnessForm
from crm.extensions import db
from crm.tickets import service as tickets
from crm.tickets.queue import ticket_number_in
from tenants import current_tenant
from tenants.ext import URL_PREFIX

bp = Blueprint("audit", __name__, url_prefix=URL_PREFIX)

PAGE_SIZE = 50


def _local_midnight(day, timezone: str) -> datetime:
    return datetime.combine(day, time(), tzinfo=ZoneInfo(timezone)).astimezone(UTC)


def _subject(form: AuditFilterForm) -> tuple[str | None, str | None]:
    """The subject filter as typed: an internal id as it is, and a ticket's reference as
    people write it ("RF-1009", "rf 1009", "#1009") as that ticket's id. An unknown
    reference is an error on the field (None, None)."""
    subject_type, subject_id = form.subject_type.data, (form.subject_id.data or "").strip()
    number = None if subject_id.isdigit() else ticket_number_in(subject_id)
    if number is None:
        return subject_type, subject_id or None
    ticket = tickets.ticket_by_number(number)
    if subject_type and subject_type.strip() != "ticket":
        form.subject_id.errors.append(
            _("A reference names a ticket: set the subject type to ticket, or clear it.")
        )
    elif ticket is None:
        form.subject_id.errors.append(_("No ticket has the reference %(reference)s.", reference=subject_id))
    else:
        return "ticket", str(ticket.id)
    return None, None


@bp.route("/audit")
@requires("audit.view")
def events():
    form = AuditFilterForm(request.args)
    status = 200
    filters = service.EventFilter()
    if request.args and not form.validate():
        status = 400
        if form.before.errors:  # not a field on the page: say what is wrong above it
            flash(_("This page link is not valid; start from the first page."), "warning")
    elif request.args and (subject := _subject(form)) and form.subject_id.errors:
        status = 400
    elif request.args:
        tz = current_tenant().timezone
        subject_type, subject_id = subject
        filters = service.EventFilter(
            actor=form.actor.data,
            action=form.action.data,
            subject_type=subject_type,
            subject_id=subject_id,
            since=_local_midnight(form.since.data, tz) if form.since.data else None,
            until=_local_midnight(form.until.data + timedelta(days=1), tz) if form.until.data else None,
        )
    before = form.before.data if status == 200 else None
    page = service.list_events(filters, before, PAGE_SIZE + 1)
    more = len(page) > PAGE_SIZE
    page = page[:PAGE_SIZE]
    # An actor searched for is recorded as a digest: it may be a person's email.
    viewed = {key: value for key, value in request.args.items() if value}
    if "actor" in viewed:
        viewed["actor"] = digest(viewed["actor"])
    record_auditor_reading("audit.viewed", "audit_trail", None, viewed)
    next_args = {key: value for key, value in request.args.items() if key != "before" and value}
    if more:
        next_args["before"] = page[-1].seq
    return (
        render_template(
            "audit/events.html",
            form=form,
            events=page,
            head=service.chain_head(),
            next_args=next_args if more else None,
        ),
        status,
    )


@bp.route("/audit/checkpoints")
@requires("audit.view")
def checkpoint_list():
    form = WitnessForm(witnesses="\n".join(checkpoints.witnesses()))
    return _checkpoints_page(form)


def _checkpoints_page(form: WitnessForm, status: int = 200):
    record_auditor_reading("audit.viewed", "audit_checkpoints", None)
    return (
        render_template(
            "audit/checkpoints.html",
            checkpoints=checkpoints.listed(),
            head=service.chain_head(),
            form=form if can(current_user, "settings.manage") else None,
            witness_count=len(checkpoints.witnesses()),
        ),
        status,
    )


@bp.route("/audit/checkpoints/<int:tree_size>.json")
@requires("audit.view")
def checkpoint_download(tree_size: int):
    checkpoint = checkpoints.by_size(tree_size)
    if checkpoint is None:
        abort(404)
    record_auditor_reading("export.created", "audit_checkpoint", tree_size, {"file": "checkpoint"})
    body = canonical_json(checkpoints.document(checkpoint, current_tenant().slug)) + b"\n"
    name = f"{current_tenant().slug}-checkpoint-{tree_size}.json"
    return (
        body,
        200,
        {
            "Content-Type": "application/json",
            "Content-Disposition": f'attachment; filename="{name}"',
        },
    )


@bp.route("/audit/checkpoints/witnesses", methods=["POST"])
@requires("settings.manage")
def witnesses():
    form = WitnessForm()
    if not form.validate():
        return _checkpoints_page(form, 422)
    checkpoints.set_witnesses(form.witnesses.addresses, actor=current_actor())
    db.session.commit()
    flash(_("Witnesses saved. The next checkpoint is mailed to them."), "success")
    return redirect(url_for("audit.checkpoint_list"))
