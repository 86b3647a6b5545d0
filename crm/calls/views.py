"""The calls page: what the dialer posted, and the calls no ticket or lead claimed, for
staff to file by reference or dismiss with a reason."""

from flask import Blueprint, abort, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from wtforms import StringField
from wtforms.validators import DataRequired, Length

from crm.access import current_actor, requires
from crm.auth import service as auth
from crm.calls import service
from crm.calls.models import CallState, RecordingState
from crm.errors import DomainError
from crm.files.storage import blob_path
from crm.forms import Form
from crm.tickets.labels import DIRECTION_LABELS, OUTCOME_LABELS
from crm.webforms import in_one_transaction
from tenants.ext import URL_PREFIX

bp = Blueprint("calls", __name__, url_prefix=URL_PREFIX)

STATE_LABELS = {
    CallState.UNMATCHED: _l("Unmatched"),
    CallState.FILED: _l("Filed"),
    CallState.DISMISSED: _l("Dismissed"),
}


class FileForm(Form):
    reference = StringField(_l("Ticket or lead"), validators=[DataRequired(), Length(max=30)])


class DismissForm(Form):
    reason = StringField(_l("Why dismiss it?"), validators=[DataRequired(), Length(max=500)])


def _render(status: int = 200):
    state = request.args.get("state", CallState.UNMATCHED)
    if state not in (*CallState, "all"):
        abort(400)
    before = request.args.get("before", type=int)
    if before is not None and not 0 < before < 2**63:
        abort(400)
    rows = service.list_page(None if state == "all" else state, before=before)
    page, more = rows[: service.PAGE_SIZE], len(rows) > service.PAGE_SIZE
    return (
        render_template(
            "calls/index.html",
            calls=page,
            state=state,
            states=STATE_LABELS,
            unmatched=service.unmatched_count(),
            file_form=FileForm(formdata=None),
            dismiss_form=DismissForm(formdata=None),
            staff={user.id: user.display_name for user in auth.list_users()},
            direction_labels=DIRECTION_LABELS,
            outcome_labels=OUTCOME_LABELS,
            customer_number=service.customer_number,
            unmatched_reason=service.unmatched_reason,
            filed_on=service.filed_on(page),
            next_url=url_for(".index", state=state, before=page[-1].id) if more else None,
        ),
        status,
    )


@bp.route("/calls")
@requires("tickets.view")
def index():
    return _render()


def _act(call_id: int, form: Form, perform, done: str, missing: str):
    call_record = service.call_by_id(call_id)
    if call_record is None:
        abort(404)
    if not form.validate():
        flash(missing, "danger")
        return _render(400)
    try:
        in_one_transaction(lambda: perform(call_record), done=done)
    except DomainError as error:
        flash(error.message, "danger")
        return _render(error.status)
    return redirect(url_for(".index"))


@bp.route("/calls/<int:call_id>/file", methods=["POST"])
@requires("tickets.work")
def file(call_id: int):
    form = FileForm()
    return _act(
        call_id,
        form,
        lambda call_record: service.file_by_staff(
            call_record, form.reference.data, user=current_user._get_current_object(), actor=current_actor()
        ),
        _("The call is filed."),
        _("Give the reference of the ticket or lead, e.g. RF-1042 or LD-1001."),
    )


@bp.route("/calls/<int:call_id>/dismiss", methods=["POST"])
@requires("tickets.work")
def dismiss(call_id: int):
    form = DismissForm()
    return _act(
        call_id,
        form,
        lambda call_record: service.dismiss(
            call_record, form.reason.data, user=current_user._get_current_object(), actor=current_actor()
        ),
        _("The call is dismissed."),
        _("Give the reason for dismissing it."),
    )


@bp.route("/calls/<int:call_id>/recording")
@requires("tickets.view")
def recording(call_id: int):
    call_record = service.call_by_id(call_id)
    if call_record is None or call_record.recording_state != RecordingState.STORED:
        abort(404)
    response = send_file(
        blob_path(call_record.tenant_id, call_record.recording_sha256),
        mimetype=call_record.recording_type,
        as_attachment=True,
        download_name=call_record.recording_name,
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
