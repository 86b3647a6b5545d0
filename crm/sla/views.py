"""The SLA admin pages (calendars, the policy, the deadline rules) and each staff
member's notifications."""

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from crm.access import current_actor, requires
from crm.auth import service as auth
from crm.auth.forms import LogoutForm
from crm.columns import utcnow
from crm.errors import DomainError
from crm.i18n import page_locale
from crm.sla import calendars as calendar_service
from crm.sla import notifications as notices
from crm.sla import rules, versions
from crm.sla.businesstime import CalendarError, CalendarSpec, format_intervals, format_weekly, parse_hours
from crm.sla.forms import (
    NEW_ROWS,
    CalendarForm,
    ImportChinaForm,
    ImportIcsForm,
    NewCalendarForm,
    deadlines_form,
    policy_form,
)
from crm.sla.labels import COUNTRY_LABELS, METRIC_LABELS, UNIT_LABELS
from crm.sla.models import ConfigKind
from crm.tickets.service import list_assignable_users
from crm.webforms import in_one_transaction, show_error
from tenants.ext import URL_PREFIX

bp = Blueprint("sla", __name__, url_prefix=URL_PREFIX)


def _saved(version, what: str):
    """Say what the save did."""
    if version is None:
        flash(_("Nothing changed."), "info")
    else:
        flash(_("%(what)s saved as version %(version)d.", what=what, version=version.version), "success")


def _refused(form, error: DomainError) -> int:
    show_error(form, error)
    return error.status


def _save_document(form, kind: ConfigKind, what: str) -> int | None:
    """Save a submitted policy or deadline-rules form as the next version; None when
    saved, else the status of the refusal (shown on the form)."""
    if not form.validate():
        return 400
    try:
        saved = in_one_transaction(
            lambda: versions.save(
                kind, rules.DEFAULT_KEY, form.to_json(), actor=current_actor(), user_id=current_user.id
            )
        )
    except DomainError as error:
        return _refused(form, error)
    _saved(saved, what)
    return None


# --- calendars ---------------------------------------------------------------------------


@bp.route("/admin/calendars", methods=["GET", "POST"])
@requires("sla.manage")
def calendar_list():
    form = NewCalendarForm()
    status = 200
    if form.is_submitted():
        status = 400
        if form.validate():
            try:
                version = in_one_transaction(
                    lambda: calendar_service.create(
                        form.name.data,
                        form.timezone.data.strip(),
                        actor=current_actor(),
                        user_id=current_user.id,
                    )
                )
            except DomainError as error:
                status = _refused(form, error)
            else:
                _saved(version, _("Calendar"))
                return redirect(url_for(".calendar_edit", name=version.key))
    else:
        form.timezone.data = versions.current(ConfigKind.CALENDAR).body["timezone"]
    found = [(version, versions.calendar_spec(version)) for version in versions.calendars()]
    return render_template(
        "sla/calendars.html", calendars=found, form=form, format_weekly=format_weekly
    ), status


def _calendar_form_of(spec: CalendarSpec) -> CalendarForm:
    form = CalendarForm(formdata=None)
    form.timezone.data = spec.timezone
    form.hours.data = format_weekly(spec.weekly).replace("; ", "\n")
    form.holidays.data = "\n".join(f"{day.isoformat()} {name}".rstrip() for day, name in spec.holidays)
    form.workdays.data = "\n".join(
        f"{day.isoformat()} {format_intervals(hours)}" for day, hours in spec.workdays
    )
    return form


def _spec_from(form: CalendarForm) -> CalendarSpec:
    holidays, workdays = form.parsed_dates()
    try:
        hours = parse_hours(form.hours.data.replace("\n", ";"))
    except CalendarError as error:
        raise calendar_service.calendar_error(error, "hours") from None
    try:
        return CalendarSpec(
            timezone=form.timezone.data.strip(),
            weekly=tuple(hours.get(day, ()) for day in range(7)),
            holidays=tuple(holidays.items()),
            workdays=tuple(workdays.items()),
        )
    except CalendarError as error:
        raise calendar_service.calendar_error(error, "timezone") from None


@bp.route("/admin/calendars/<path:name>", methods=["GET", "POST"])
@requires("sla.manage")
def calendar_edit(name: str):
    version = versions.current(ConfigKind.CALENDAR, name)
    if version is None:
        abort(404)
    spec = versions.calendar_spec(version)
    form = CalendarForm() if request.method == "POST" else _calendar_form_of(spec)
    china, ics = ImportChinaForm(formdata=None, year=utcnow().year), ImportIcsForm(formdata=None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.validate():
            try:
                saved = in_one_transaction(
                    lambda: calendar_service.save_spec(
                        name, _spec_from(form), actor=current_actor(), user_id=current_user.id
                    )
                )
            except DomainError as error:
                status = _refused(form, error)
            else:
                _saved(saved, _("Calendar"))
                return redirect(url_for(".calendar_edit", name=name))
    return _render_calendar(version, form, china, ics, status)


def _render_calendar(version, form, china, ics, status: int = 200):
    return render_template(
        "sla/calendar.html",
        version=version,
        form=form,
        china=china,
        ics=ics,
        history=versions.history(ConfigKind.CALENDAR, version.key),
        staff={user.id: user.display_name for user in auth.list_users()},
    ), status


@bp.route("/admin/calendars/<path:name>/import-cn", methods=["POST"])
@requires("sla.manage")
def calendar_import_china(name: str):
    version = versions.current(ConfigKind.CALENDAR, name) or abort(404)
    china = ImportChinaForm()
    if china.validate():
        try:
            saved = in_one_transaction(
                lambda: calendar_service.import_china(
                    name,
                    china.year.data,
                    actor=current_actor(),
                    user_id=current_user.id,
                    language=page_locale(),
                )
            )
        except DomainError as error:
            status = _refused(china, error)
        else:
            _saved(saved, _("Calendar"))
            return redirect(url_for(".calendar_edit", name=name))
    else:
        status = 400
    form = _calendar_form_of(versions.calendar_spec(version))
    return _render_calendar(version, form, china, ImportIcsForm(formdata=None), status)


@bp.route("/admin/calendars/<path:name>/import-ics", methods=["POST"])
@requires("sla.manage")
def calendar_import_ics(name: str):
    version = versions.current(ConfigKind.CALENDAR, name) or abort(404)
    ics = ImportIcsForm()
    if ics.validate():
        try:
            data = ics.ics.data.stream.read(calendar_service.MAX_ICS_BYTES + 1)
            saved = in_one_transaction(
                lambda: calendar_service.import_ics(
                    name, data, actor=current_actor(), user_id=current_user.id
                )
            )
        except DomainError as error:
            status = _refused(ics, error)
        else:
            _saved(saved, _("Calendar"))
            return redirect(url_for(".calendar_edit", name=name))
    else:
        status = 400
    form = _calendar_form_of(versions.calendar_spec(version))
    china = ImportChinaForm(formdata=None, year=utcnow().year)
    return _render_calendar(version, form, china, ics, status)


# --- the SLA policy ----------------------------------------------------------------------


@bp.route("/admin/sla", methods=["GET", "POST"])
@requires("sla.manage")
def policy_edit():
    version = versions.current(ConfigKind.SLA_POLICY)
    policy = versions.policy(version)
    names = sorted(versions.calendar_names())
    status = 200
    if request.method == "POST":
        rows = sum(1 for key in request.form if key.endswith("-first_response"))
        form = policy_form(min(rows, rules.MAX_RULES + NEW_ROWS))()
        form.set_choices(names, list_assignable_users())
        status = _save_document(form, ConfigKind.SLA_POLICY, _("SLA policy"))
        if status is None:
            return redirect(url_for(".policy_edit"))
    else:
        form = policy_form(len(policy.rules) + NEW_ROWS)(formdata=None)
        form.set_choices(names, list_assignable_users())
        for position, (entry, rule) in enumerate(zip(form.rule_rows, policy.rules, strict=False), start=1):
            row = entry.form
            row.position.data = position * 10
            for field in ("kind", "priority", "channel", "calendar", "warn_percent"):
                getattr(row, field).data = getattr(rule, field)
            for field in ("first_response", "next_response", "resolution"):
                getattr(row, field).data = rules.format_duration(getattr(rule, field))
            row.actions.data = list(rule.actions)
            row.reassign_to.data = str(rule.reassign_to or "")
        blank = form.rule_rows[-1].form
        blank.position.data = 0  # a new rule is usually a narrower one: tried first
        blank.calendar.data = names[0] if names else rules.DEFAULT_CALENDAR
        blank.actions.data = []
    return render_template(
        "sla/policy.html",
        form=form,
        version=version,
        history=versions.history(ConfigKind.SLA_POLICY, rules.DEFAULT_KEY),
        staff={user.id: user.display_name for user in auth.list_users()},
    ), status


# --- regulatory deadlines ----------------------------------------------------------------


@bp.route("/admin/deadlines", methods=["GET", "POST"])
@requires("sla.manage")
def deadlines_edit():
    version = versions.current(ConfigKind.DEADLINES)
    current = versions.deadline_rules(version)
    names = sorted(versions.calendar_names())
    status = 200
    if request.method == "POST":
        assignments = sum(1 for key in request.form if key.endswith("-profile"))
        custom = sum(1 for key in request.form if key.endswith("-code"))
        form = deadlines_form(min(assignments, 200), min(custom, 100))()
        form.set_choices(names, current.profiles() | _posted_profiles(form))
        status = _save_document(form, ConfigKind.DEADLINES, _("Deadline rules"))
        if status is None:
            return redirect(url_for(".deadlines_edit"))
    else:
        form = deadlines_form(len(current.assignments) + NEW_ROWS, len(current.custom) + NEW_ROWS)(
            formdata=None
        )
        form.set_choices(names, current.profiles())
        form.calendar.data = current.calendar
        for entry, assignment in zip(form.assignments_, current.assignments, strict=False):
            entry.form.kind.data, entry.form.channel.data = assignment.kind, assignment.channel
            entry.form.profile.data = assignment.profile
        for entry, profile in zip(form.custom_, current.custom, strict=False):
            deadline = profile.deadlines[0]
            entry.form.code.data, entry.form.name.data = profile.code, profile.name
            entry.form.days.data, entry.form.unit.data = deadline.days, deadline.unit
            entry.form.source.data = profile.source
            entry.form.country.data, entry.form.roll_forward.data = (
                profile.country or "",
                profile.roll_forward,
            )
    return render_template(
        "sla/deadlines.html",
        form=form,
        version=version,
        profiles=current.profiles(),
        history=versions.history(ConfigKind.DEADLINES, rules.DEFAULT_KEY),
        staff={user.id: user.display_name for user in auth.list_users()},
        metric_labels=METRIC_LABELS,
        unit_labels=UNIT_LABELS,
        country_labels=COUNTRY_LABELS,
    ), status


def _posted_profiles(form) -> dict:
    """Custom profiles being added in this very submit can be assigned in it too."""
    return {
        entry.form.code.data.strip().lower(): rules.Profile(
            entry.form.code.data, entry.form.name.data, "", ()
        )
        for entry in form.custom_
        if entry.form.code.data
    }


# --- notifications -----------------------------------------------------------------------


@bp.route("/notifications")
@requires("desk.view")
def notifications():
    return render_template(
        "sla/notifications.html",
        rows=notices.recent(current_user.id),
        event_labels=notices.LABELS,
        metric_labels=METRIC_LABELS,
    )


@bp.route("/notifications/read", methods=["POST"])
@requires("desk.view")
def notifications_read():
    if not LogoutForm().validate():  # a form with nothing but its CSRF token
        abort(400)
    in_one_transaction(lambda: notices.mark_all_read(current_user.id, actor=current_actor()))
    return redirect(url_for(".notifications"))


@bp.app_context_processor
def notification_count() -> dict:
    return {"unread_notifications": lambda: notices.unread_count(current_user.id)}
