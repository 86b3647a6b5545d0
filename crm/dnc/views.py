"""The do-not-contact list's page: search it, add an entry (anyone who works the desk),
remove one (a manager, with a reason)."""

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from wtforms import SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, Length

from crm.access import current_actor, requires
from crm.auth import service as auth
from crm.dnc import service
from crm.dnc.models import EntrySource
from crm.errors import DomainError
from crm.forms import Form
from crm.webforms import in_one_transaction, show_error
from tenants.ext import URL_PREFIX

bp = Blueprint("dnc", __name__, url_prefix=URL_PREFIX)

SOURCE_LABELS = {
    EntrySource.CALL: _l("Asked on a call"),
    EntrySource.REPORT_12321: _l("12321 complaint"),
    EntrySource.STOP_LINK: _l("Stop link"),
    EntrySource.IMPORT: _l("Import"),
    EntrySource.STAFF: _l("Staff"),
}
ADDABLE = (EntrySource.STAFF, EntrySource.CALL, EntrySource.REPORT_12321)


class AddForm(Form):
    value = StringField(_l("Phone number or email"), validators=[DataRequired(), Length(max=254)])
    reason = StringField(_l("Reason"), validators=[DataRequired(), Length(max=500)])
    source = SelectField(_l("Source"), choices=[SelectChoice(s.value, SOURCE_LABELS[s]) for s in ADDABLE])


class RemoveForm(Form):
    reason = StringField(_l("Why remove it?"), validators=[DataRequired(), Length(max=500)])


@bp.app_context_processor
def dnc_labels() -> dict:
    return {"dnc_source_label": lambda source: SOURCE_LABELS.get(source, source)}


def _render(add_form: AddForm | None = None, status: int = 200):
    q = request.args.get("q", "")[:254]
    removed = request.args.get("removed") == "1"
    before = request.args.get("before", type=int)
    if before is not None and not 0 < before < 2**63:
        abort(400)
    rows = service.list_page(q, include_removed=removed, before=before)
    page, more = rows[: service.PAGE_SIZE], len(rows) > service.PAGE_SIZE
    kept = {key: value for key, value in (("q", q), ("removed", "1" if removed else "")) if value}
    return (
        render_template(
            "dnc/index.html",
            entries=page,
            q=q,
            removed=removed,
            add_form=add_form or AddForm(formdata=None),
            remove_form=RemoveForm(formdata=None),
            staff={user.id: user.display_name for user in auth.list_users()},
            next_url=url_for(".index", **kept, before=page[-1].id) if more else None,
        ),
        status,
    )


@bp.route("/dnc")
@requires("dnc.view")
def index():
    return _render()


@bp.route("/dnc", methods=["POST"])
@requires("dnc.add")
def add():
    form = AddForm()
    if not form.validate():
        return _render(form, 400)
    value = form.value.data

    def perform():
        return service.add_entry(
            service.kind_of(value),
            value,
            reason=form.reason.data,
            source=form.source.data,
            actor=current_actor(),
            user=current_user._get_current_object(),
        )

    try:
        _entry, new = in_one_transaction(perform)
    except DomainError as error:
        show_error(form, error)
        return _render(form, error.status)
    flash(_("Added to the do-not-contact list.") if new else _("Already on the list."), "success")
    return redirect(url_for(".index"))


@bp.route("/dnc/<int:entry_id>/remove", methods=["POST"])
@requires("dnc.remove")
def remove(entry_id: int):
    entry = service.entry_by_id(entry_id)
    if entry is None:
        abort(404)
    form = RemoveForm()
    if not form.validate():
        flash(_("Give the reason for removing it."), "danger")
        return _render(status=400)
    try:
        in_one_transaction(
            lambda: service.remove_entry(
                entry, reason=form.reason.data, user=current_user._get_current_object(), actor=current_actor()
            ),
            done=_("Removed from the do-not-contact list."),
        )
    except DomainError as error:
        flash(error.message, "danger")
        return _render(status=error.status)
    return redirect(url_for(".index"))
