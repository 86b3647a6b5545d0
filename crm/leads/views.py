"""The sales desk: the lead list (views, search, keyset pages) and a lead's page with its
actions. Each action is a POST to its own URL that calls one service function, commits
and goes back to the lead, or rolls back and shows the lead again with the error."""

from collections.abc import Callable

from flask import Blueprint, abort, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf.file import FileField, FileRequired
from wtforms import SelectChoice, SelectField

from crm.access import can, current_actor, record_auditor_reading, requires
from crm.audit.chain import digest
from crm.auth import service as auth
from crm.columns import utcnow
from crm.dnc import service as dnc
from crm.errors import Conflict, DomainError
from crm.files.storage import blob_path
from crm.forms import Form
from crm.leads import consent, import_runs, imports, intake, listing, pipeline
from crm.leads.forms import (
    OUTCOME_LABELS,
    SOURCE_LABELS,
    STAGE_LABELS,
    AssignForm,
    CallForm,
    ConfirmForm,
    ConsentForm,
    EmailForm,
    NoteForm,
    StageForm,
)
from crm.leads.models import STAGE_TRANSITIONS, ActivityKind, Lead, Stage
from crm.provisioning.service import tenant_settings
from crm.tickets.input_checks import Upload
from crm.tickets.queue import Cursor
from crm.webforms import in_one_transaction, show_error
from tenants.ext import URL_PREFIX

bp = Blueprint("leads", __name__, url_prefix=URL_PREFIX)

VIEW_LABELS = {
    "mine": _l("My leads"),
    "new": _l("New"),
    "overdue": _l("Overdue for first contact"),
    "all": _l("All"),
}
ACTION_FORMS: dict[str, type[Form]] = {
    "call": CallForm,
    "note": NoteForm,
    "email": EmailForm,
    "stage": StageForm,
    "assign": AssignForm,
    "consent": ConsentForm,
}
LIST_PARAMS = ("view", "q")


@bp.app_context_processor
def lead_labels() -> dict:
    return {
        "stage_label": lambda stage: STAGE_LABELS.get(stage, stage),
        "outcome_label": lambda outcome: OUTCOME_LABELS.get(outcome, outcome),
        "source_label": lambda source: SOURCE_LABELS.get(source, source),
        "lead_view_labels": VIEW_LABELS,
        "now": utcnow(),
    }


def _me():
    return current_user._get_current_object()


def _lead_or_404(reference: str) -> Lead:
    lead = pipeline.lead_by_reference(reference)
    if lead is None:
        abort(404)
    return lead


# --- the list -------------------------------------------------------------------------------


@bp.route("/leads")
@requires("leads.view")
def index():
    view = request.args.get("view", listing.DEFAULT_VIEW)
    q = request.args.get("q", "")[:200]
    after = None
    if request.args.get("after"):
        try:
            after = Cursor.decode(request.args["after"])
        except ValueError:
            abort(400)
    if view not in listing.VIEWS:
        abort(400)
    page = listing.lead_page(
        listing.LeadQuery(view=view, q=q),
        user_id=current_user.id,
        country=tenant_settings().country,
        after=after,
    )
    kept = {key: value for key, value in (("view", view), ("q", q)) if value}
    record_auditor_reading("audit.viewed", "lead_list", None, {**kept, "q": digest(q)} if q else kept)
    return render_template(
        "leads/list.html",
        leads=page.leads,
        view=view,
        q=q,
        views=listing.VIEWS,
        staff={user.id: user.display_name for user in auth.list_users()},
        next_url=url_for(".index", **kept, after=page.next_cursor.encode()) if page.next_cursor else None,
        first_url=url_for(".index", **kept) if after else None,
        counts=listing.lead_summary(current_user.id),
        listed=dnc.listed_values([lead.phone for lead in page.leads], [lead.email for lead in page.leads]),
    )


class ImportForm(Form):
    kind = SelectField(
        _l("The file holds"),
        choices=[
            SelectChoice("leads", _l("Leads: name,phone,email,company,source,consent")),
            SelectChoice("dnc", _l("Do-not-contact entries: phone,email,reason")),
        ],
    )
    file = FileField(_l("CSV file"), validators=[FileRequired(_l("Choose a CSV file."))])


@bp.route("/leads/import", methods=["GET", "POST"])
@requires("leads.import")
def import_page():
    """Upload a CSV; the import runs as a job and this page shows its progress."""
    form = ImportForm()
    status = 200
    if form.is_submitted():
        status = 400
        if form.validate():
            upload = form.file.data
            content = upload.stream.read(imports.MAX_FILE_BYTES + 1)
            try:
                in_one_transaction(
                    lambda: import_runs.start(
                        form.kind.data,
                        upload.filename,
                        content,
                        user_id=current_user.id,
                        actor=current_actor(),
                    ),
                    done=_("The import has started."),
                )
            except DomainError as error:
                show_error(form, error)
                status = error.status
            else:
                return redirect(url_for(".import_page"))
    runs = import_runs.recent_runs()
    running = any(run.status in ("queued", "running") for run in runs)
    return render_template("leads/import.html", form=form, runs=runs, running=running), status


# --- a lead ---------------------------------------------------------------------------------


def _stage_choices(lead: Lead) -> list[SelectChoice]:
    return [SelectChoice(stage.value, STAGE_LABELS[stage]) for stage in STAGE_TRANSITIONS[Stage(lead.stage)]]


def _assignee_choices() -> list[SelectChoice]:
    return [
        SelectChoice("", _("Nobody")),
        *(SelectChoice(str(u.id), u.display_name) for u in pipeline.assignable_users()),
    ]


def _prepare(name: str, form: Form, lead: Lead) -> Form:
    if name == "stage":
        form.stage.choices = _stage_choices(lead)
    elif name == "assign":
        form.assignee_id.choices = _assignee_choices()
    return form


def _render_lead(lead: Lead, status: int = 200, **bound: Form):
    forms = {}
    if can(current_user, "leads.work"):
        forms = {
            name: bound.get(name) or _prepare(name, form(prefix=name, formdata=None), lead)
            for name, form in ACTION_FORMS.items()
        }
        if "assign" not in bound:
            forms["assign"].assignee_id.data = str(lead.assignee_id or "")
    activities = pipeline.activities_of(lead)
    unanswered = [
        a
        for a in activities
        if a.kind == ActivityKind.CALL and a.details.get("outcome") in ("no_answer", "busy")
    ]
    return (
        render_template(
            "leads/show.html",
            lead=lead,
            activities=activities,
            requests=pipeline.requests_of(lead),
            unanswered=unanswered,
            permission=consent.permission(lead),
            clock=intake.first_contact_clock(lead),
            proofs=consent.proofs_of(lead),
            staff={user.id: user.display_name for user in auth.list_users()},
            forms=forms,
            active=next(iter(bound), None),
            confirm_form=ConfirmForm(formdata=None),
            refused_call=next(
                (
                    a
                    for a in activities
                    if a.kind == ActivityKind.CALL and a.details.get("outcome") == "refused"
                ),
                None,
            ),
        ),
        status,
    )


@bp.route("/leads/<reference>")
@requires("leads.view")
def show(reference: str):
    lead = _lead_or_404(reference)
    record_auditor_reading("audit.viewed", "lead", lead.id, {"reference": lead.reference})
    return _render_lead(lead)


@bp.route("/leads/<reference>/recordings/<int:activity_id>")
@requires("leads.view")
def recording(reference: str, activity_id: int):
    lead = _lead_or_404(reference)
    activity = next((a for a in pipeline.activities_of(lead) if a.id == activity_id), None)
    kept = activity.details.get("recording") if activity is not None else None
    if not kept:
        abort(404)
    record_auditor_reading(
        "audit.viewed", "lead", lead.id, {"reference": lead.reference, "recording": kept["sha256"]}
    )
    return send_file(
        blob_path(lead.tenant_id, kept["sha256"]),
        mimetype=kept["content_type"],
        as_attachment=True,
        download_name=kept["filename"],
    )


def _act(reference: str, perform: Callable[[Lead, Form], object], done: str, *, slot: str | None = None):
    lead = _lead_or_404(reference)
    form = _prepare(slot, ACTION_FORMS[slot](prefix=slot), lead) if slot else ConfirmForm()
    bound = {slot: form} if slot else {}
    if not form.validate():
        return _render_lead(lead, 400, **bound)
    try:
        in_one_transaction(lambda: perform(lead, form))
    except DomainError as error:
        if isinstance(error, Conflict) or not slot:
            flash(error.message, "danger")
        else:
            show_error(form, error)
        return _render_lead(_lead_or_404(reference), error.status, **bound)
    flash(done, "success")
    return redirect(url_for(".show", reference=reference))


@bp.route("/leads/<reference>/call", methods=["POST"])
@requires("leads.work")
def call(reference: str):
    def perform(lead, form):
        storage = request.files.get("call-recording")
        upload = (
            Upload(storage.filename, storage.stream.read(pipeline.MAX_FILE_BYTES + 1))
            if storage and storage.filename
            else None
        )
        pipeline.log_call(
            lead,
            pipeline.CallLog(
                outcome=form.outcome.data,
                direction=form.direction.data,
                duration_seconds=form.duration_seconds.data,
                note=form.note.data or "",
                recording=upload,
            ),
            user=_me(),
            actor=current_actor(),
        )

    return _act(reference, perform, _("Call logged."), slot="call")


@bp.route("/leads/<reference>/note", methods=["POST"])
@requires("leads.work")
def note(reference: str):
    return _act(
        reference,
        lambda lead, form: pipeline.add_note(lead, form.body.data, user=_me(), actor=current_actor()),
        _("Note added."),
        slot="note",
    )


@bp.route("/leads/<reference>/email", methods=["POST"])
@requires("leads.work")
def email(reference: str):
    return _act(
        reference,
        lambda lead, form: pipeline.send_email(
            lead, form.subject.data, form.body.data, user=_me(), actor=current_actor()
        ),
        _("Email sent."),
        slot="email",
    )


@bp.route("/leads/<reference>/stage", methods=["POST"])
@requires("leads.work")
def stage(reference: str):
    def perform(lead, form):
        pipeline.set_stage(
            lead,
            form.stage.data,
            user=_me(),
            actor=current_actor(),
            lost_reason=form.lost_reason.data,
            customer_id=form.customer_id.data,
            trial_starts_on=form.trial_starts_on.data,
            trial_ends_on=form.trial_ends_on.data,
        )

    return _act(reference, perform, _("Stage changed."), slot="stage")


@bp.route("/leads/<reference>/assign", methods=["POST"])
@requires("leads.work")
def assign(reference: str):
    def perform(lead, form):
        chosen = form.assignee_id.data
        pipeline.assign(lead, int(chosen) if chosen else None, user=_me(), actor=current_actor())

    return _act(reference, perform, _("Owner changed."), slot="assign")


@bp.route("/leads/<reference>/consent", methods=["POST"])
@requires("leads.work")
def record_consent(reference: str):
    return _act(
        reference,
        lambda lead, form: pipeline.record_consent(
            lead, form.evidence_ref.data, user=_me(), actor=current_actor()
        ),
        _("Consent recorded: this lead may be called."),
        slot="consent",
    )


@bp.route("/leads/<reference>/do-not-contact", methods=["POST"])
@requires("leads.work")
def do_not_contact(reference: str):
    """One click after a refused call: the number (and address) go on the list."""
    return _act(
        reference,
        lambda lead, form: pipeline.refuse_contact(
            lead, source="call", reason="Refused on a call", user=_me(), actor=current_actor()
        ),
        _("Added to the do-not-contact list."),
    )


@bp.route("/leads/<reference>/erase", methods=["POST"])
@requires("leads.work")
def erase(reference: str):
    """A manager erases the person's details on request; the consent proof stays."""
    return _act(
        reference,
        lambda lead, form: pipeline.erase(lead, user=_me(), actor=current_actor()),
        _("The person's details are erased. The proof of consent is kept until its retention ends."),
    )
