"""Forms of the SLA admin pages: calendars, the SLA policy and the deadline rules."""

from datetime import date

from flask_babel import lazy_gettext as _l
from flask_wtf.file import FileField
from wtforms import (
    BooleanField,
    FieldList,
    Form,
    FormField,
    IntegerField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import InputRequired, Length, NumberRange, Optional, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from crm.errors import DomainError
from crm.forms import Form as PageForm
from crm.sla import rules
from crm.sla.businesstime import CalendarError, parse_intervals
from crm.sla.labels import ACTION_LABELS, COUNTRY_LABELS, UNIT_LABELS
from crm.sla.models import Unit
from crm.tickets.labels import CHANNEL_LABELS, KIND_LABELS, PRIORITY_LABELS

ANY = _l("Any")
NEW_ROWS = 1  # blank rows offered for adding a rule, an assignment, a profile


def _any_of(labels: dict) -> list[SelectChoice]:
    return [SelectChoice(rules.ANY, ANY)] + [SelectChoice(str(key), label) for key, label in labels.items()]


class NewCalendarForm(PageForm):
    name = StringField(_l("Calendar name"), validators=[InputRequired(), Length(max=60)])
    timezone = StringField(
        _l("Time zone"),
        validators=[InputRequired(), Length(max=64)],
        description=_l("An IANA name such as Asia/Shanghai or Europe/London."),
    )


class CalendarForm(PageForm):
    timezone = StringField(_l("Time zone"), validators=[InputRequired(), Length(max=64)])
    hours = TextAreaField(
        _l("Weekly hours"),
        validators=[InputRequired(), Length(max=2000)],
        render_kw={"rows": 3, "class": "font-monospace"},
        description=_l(
            'One clause per line, e.g. "mon-fri 09:00-12:00,13:30-18:00", "sat 10:00-16:00", '
            '"sun closed" or "24x7". Days not named are closed.'
        ),
    )
    holidays = TextAreaField(
        _l("Holidays"),
        validators=[Length(max=50_000)],
        render_kw={"rows": 8, "class": "font-monospace"},
        description=_l('One per line: "2026-10-01 National Day".'),
    )
    workdays = TextAreaField(
        _l("Extra working days"),
        validators=[Length(max=20_000)],
        render_kw={"rows": 4, "class": "font-monospace"},
        description=_l('One per line: "2026-10-10 09:00-18:00", such as a weekend made up for a holiday.'),
    )

    def parsed_dates(self) -> tuple[dict[date, str], dict[date, tuple]]:
        """The holidays and working days the text areas hold; a bad line names itself."""
        holidays, workdays = {}, {}
        for field, target in ((self.holidays, holidays), (self.workdays, workdays)):
            for number, line in enumerate((field.data or "").splitlines(), start=1):
                line = line.strip()
                if not line:
                    continue
                day_text, _, rest = line.partition(" ")
                try:
                    day = date.fromisoformat(day_text)
                    target[day] = parse_intervals(rest.strip()) if field is self.workdays else rest.strip()
                except (ValueError, CalendarError) as error:
                    reason = str(error) if isinstance(error, CalendarError) else _l("not a YYYY-MM-DD date")
                    raise DomainError(
                        _l("Line %(n)d, “%(line)s”: %(reason)s", n=number, line=line[:80], reason=reason),
                        field.name,
                    ) from None
        return holidays, workdays


class ImportChinaForm(PageForm):
    year = IntegerField(_l("Year"), validators=[InputRequired(), NumberRange(min=2004, max=2100)])


class ImportIcsForm(PageForm):
    ics = FileField(_l("iCalendar file (.ics)"), validators=[InputRequired()])


def _duration(form, field) -> None:
    """A target the policy can read: a bad one is shown beside its field, not as a
    message at the top of a long page."""
    try:
        rules.parse_duration(field.data, field.name)
    except DomainError as error:
        raise ValidationError(error.message) from None


class RuleForm(Form):
    """One rule; a row with no targets at all is left out (a blank row, or one cleared)."""

    kind = SelectField(_l("Kind"), choices=_any_of(KIND_LABELS), default=rules.ANY)
    priority = SelectField(_l("Priority"), choices=_any_of(PRIORITY_LABELS), default=rules.ANY)
    channel = SelectField(_l("Channel"), choices=_any_of(CHANNEL_LABELS), default=rules.ANY)
    calendar = SelectField(_l("Calendar"), choices=[])
    first_response = StringField(_l("First response"), validators=[Length(max=20), _duration])
    next_response = StringField(_l("Next response"), validators=[Length(max=20), _duration])
    resolution = StringField(_l("Resolution"), validators=[Length(max=20), _duration])
    warn_percent = IntegerField(
        _l("Warn at (percent of target)"), default=80, validators=[Optional(), NumberRange(min=1, max=99)]
    )
    actions = SelectMultipleField(
        _l("When breached"),
        choices=[SelectChoice(key, label) for key, label in ACTION_LABELS.items()],
        widget=ListWidget(prefix_label=False),
        option_widget=CheckboxInput(),
        default=[rules.Action.NOTIFY_ASSIGNEE, rules.Action.NOTIFY_MANAGERS],
    )
    reassign_to = SelectField(_l("Reassign to"), choices=[], default="")
    position = IntegerField(
        _l("Order"),
        validators=[Optional(), NumberRange(min=0, max=999)],
        description=_l("Lower numbers are tried first."),
    )
    remove = BooleanField(_l("Remove this rule"))

    def to_json(self) -> dict | None:
        if self.remove.data:
            return None
        targets = {
            name: rules.parse_duration(getattr(self, name).data, name)
            for name in ("first_response", "next_response", "resolution")
        }
        if not any(targets.values()):
            return None
        reassign = self.reassign_to.data or None
        return {
            "kind": self.kind.data,
            "priority": self.priority.data,
            "channel": self.channel.data,
            "calendar": self.calendar.data,
            **targets,
            "warn_percent": self.warn_percent.data or 80,
            "actions": list(self.actions.data or ()),
            "reassign_to": int(reassign) if reassign and reassign.isdigit() else reassign,
        }


def policy_form(count: int) -> type[PageForm]:
    """The policy editor with ``count`` rule rows (the policy's rules and a blank one)."""

    class PolicyForm(PageForm):
        rule_rows = FieldList(FormField(RuleForm), min_entries=count, max_entries=rules.MAX_RULES + NEW_ROWS)

        def set_choices(self, calendars: list[str], users) -> None:
            reassign = [SelectChoice("", "—"), SelectChoice(rules.MANAGERS_QUEUE, _l("The managers' queue"))]
            reassign += [SelectChoice(str(user.id), user.display_name) for user in users]
            for entry in self.rule_rows:
                entry.form.calendar.choices = [SelectChoice(name, name) for name in calendars]
                entry.form.reassign_to.choices = reassign

        def to_json(self) -> dict:
            """The rules in the order their "Order" numbers give (ties keep the page's order)."""
            rows = sorted(
                enumerate(self.rule_rows),
                key=lambda item: (
                    item[1].form.position.data if item[1].form.position.data is not None else 999,
                    item[0],
                ),
            )
            found = [entry.form.to_json() for _index, entry in rows]
            return {"rules": [rule for rule in found if rule is not None]}

    return PolicyForm


class AssignmentForm(Form):
    kind = SelectField(_l("Kind"), choices=_any_of(KIND_LABELS), default=rules.ANY)
    channel = SelectField(_l("Channel"), choices=_any_of(CHANNEL_LABELS), default=rules.ANY)
    profile = SelectField(_l("Profile"), choices=[], default="")
    remove = BooleanField(_l("Remove"))


class CustomProfileForm(Form):
    code = StringField(_l("Code"), validators=[Length(max=40)])
    name = StringField(_l("Profile name"), validators=[Length(max=100)])
    days = IntegerField(_l("Days"), validators=[Optional(), NumberRange(min=1, max=rules.MAX_DAYS)])
    unit = SelectField(
        _l("Counted in"),
        choices=[SelectChoice(unit, UNIT_LABELS[unit]) for unit in (Unit.CALENDAR_DAYS, Unit.BUSINESS_DAYS)],
    )
    source = StringField(_l("Source"), validators=[Length(max=500)])
    country = SelectField(
        _l("Days counted on"),
        choices=[SelectChoice("", _l("the calendar chosen above"))]
        + [
            SelectChoice(code, _l("official days of %(country)s", country=label))
            for code, label in COUNTRY_LABELS.items()
        ],
        default="",
    )
    roll_forward = BooleanField(_l("A deadline on a non-working day moves to the next working day"))
    remove = BooleanField(_l("Remove"))

    def validate_code(self, field) -> None:
        if field.data and not self.days.data:
            raise ValidationError(_l("Give the number of days."))


def deadlines_form(assignments: int, custom: int) -> type[PageForm]:
    class DeadlinesForm(PageForm):
        calendar = SelectField(_l("Business days are counted on"), choices=[])
        assignments_ = FieldList(FormField(AssignmentForm), min_entries=assignments, max_entries=200)
        custom_ = FieldList(FormField(CustomProfileForm), min_entries=custom, max_entries=100)

        def set_choices(self, calendars: list[str], profiles: dict) -> None:
            self.calendar.choices = [SelectChoice(name, name) for name in calendars]
            choices = [SelectChoice("", "—")] + [
                SelectChoice(code, f"{code}: {profile.name}") for code, profile in profiles.items()
            ]
            for entry in self.assignments_:
                entry.form.profile.choices = choices

        def to_json(self) -> dict:
            return {
                "calendar": self.calendar.data,
                "assignments": [
                    {"kind": e.form.kind.data, "channel": e.form.channel.data, "profile": e.form.profile.data}
                    for e in self.assignments_
                    if e.form.profile.data and not e.form.remove.data
                ],
                "custom": [
                    {
                        "code": e.form.code.data,
                        "name": e.form.name.data,
                        "days": e.form.days.data,
                        "unit": e.form.unit.data,
                        "source": e.form.source.data,
                        # Only when set, as the stored documents have them.
                        **({"country": e.form.country.data} if e.form.country.data else {}),
                        **({"roll_forward": True} if e.form.roll_forward.data else {}),
                    }
                    for e in self.custom_
                    if e.form.code.data and not e.form.remove.data
                ],
            }

    return DeadlinesForm
