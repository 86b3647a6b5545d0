"""The free-trial form (its field names are a public contract, like the refund form's)
and the lead page's forms."""

from flask_babel import lazy_gettext as _l
from wtforms import (
    BooleanField,
    DateField,
    EmailField,
    FileField,
    HiddenField,
    IntegerField,
    SelectChoice,
    SelectField,
    StringField,
    TelField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional, ValidationError

from crm.customers.service import normalise_phone
from crm.errors import DomainError
from crm.forms import Form
from crm.leads.intake import MAX_COMPANY, MAX_NAME, MAX_NEED, MAX_UTM
from crm.leads.models import CallOutcome, Source, Stage
from crm.mail_addresses import check_email
from crm.provisioning.service import tenant_settings

REQUIRED = _l("This field is required.")
# What a person fills in on the trial form (not the tokens, the campaign or the honeypot).
PERSON_FIELDS = frozenset(
    {"name", "company", "phone", "email", "need", "consent_contact", "consent_marketing"}
)
OUTCOME_LABELS = {
    CallOutcome.ANSWERED: _l("Answered"),
    CallOutcome.NO_ANSWER: _l("No answer"),
    CallOutcome.BUSY: _l("Busy"),
    CallOutcome.VOICEMAIL: _l("Voicemail"),
    CallOutcome.WRONG_NUMBER: _l("Wrong number"),
    CallOutcome.REFUSED: _l("Refused: does not want to be called"),
}
SOURCE_LABELS = {
    Source.WEB_FORM: _l("Free-trial form"),
    Source.IMPORT: _l("Import"),
    Source.API: _l("API"),
    Source.STAFF: _l("Logged by staff"),
}
STAGE_LABELS = {
    Stage.NEW: _l("New"),
    Stage.CONTACTED: _l("Contacted"),
    Stage.QUALIFIED: _l("Qualified"),
    Stage.TRIAL: _l("Trial"),
    Stage.WON: _l("Won"),
    Stage.LOST: _l("Lost"),
    Stage.UNREACHABLE: _l("Unreachable"),
}


def _too_long(n: int):
    return Length(max=n, message=_l("Use at most %(n)d characters.", n=n))


def _as_field_error(check, *args) -> None:
    try:
        check(*args)
    except DomainError as error:
        raise ValidationError(error.message) from None


class TrialForm(Form):
    name = StringField(_l("Your name"), validators=[DataRequired(REQUIRED), _too_long(MAX_NAME)])
    company = StringField(_l("Company (optional)"), validators=[Optional(), _too_long(MAX_COMPANY)])
    phone = TelField(
        _l("Phone number"),
        validators=[DataRequired(REQUIRED), _too_long(40)],
        description=_l("We call you on this number."),
    )
    email = EmailField(_l("Email (optional)"), validators=[Optional(), _too_long(254)])
    need = TextAreaField(
        _l("What do you need? (optional)"),
        validators=[Optional(), _too_long(MAX_NEED)],
        description=_l("For example: how many seats, which numbers, when you want to start."),
        render_kw={"rows": 4},
    )
    consent_contact = BooleanField(
        validators=[DataRequired(_l("Tick this box so that we may call you about your request."))]
    )
    consent_marketing = BooleanField()
    utm_source = HiddenField(validators=[Optional(), _too_long(MAX_UTM)])
    utm_medium = HiddenField(validators=[Optional(), _too_long(MAX_UTM)])
    utm_campaign = HiddenField(validators=[Optional(), _too_long(MAX_UTM)])
    submission_token = HiddenField(validators=[DataRequired()])
    website = StringField(_l("Leave this empty"))  # the honeypot

    def validate_phone(self, field) -> None:
        _as_field_error(normalise_phone, field.data, tenant_settings().country)

    def validate_email(self, field) -> None:
        _as_field_error(check_email, field.data)

    @property
    def visible_errors(self) -> list[tuple]:
        return [(field, field.errors[0]) for field in self if field.errors and field.name in PERSON_FIELDS]


class CallForm(Form):
    direction = SelectField(
        _l("Direction"),
        choices=[SelectChoice("outbound", _l("We called")), SelectChoice("inbound", _l("They called"))],
    )
    outcome = SelectField(
        _l("Outcome"),
        choices=[SelectChoice(outcome.value, label) for outcome, label in OUTCOME_LABELS.items()],
        validators=[DataRequired(REQUIRED)],
    )
    duration_seconds = IntegerField(
        _l("Duration, seconds (optional)"),
        validators=[
            Optional(),
            NumberRange(min=0, max=86_400, message=_l("Give the duration in seconds, at most a day.")),
        ],
    )
    note = TextAreaField(
        _l("What was said (optional)"), validators=[Optional(), _too_long(20_000)], render_kw={"rows": 3}
    )
    recording = FileField(_l("Recording (optional)"), render_kw={"accept": "audio/*"})


class NoteForm(Form):
    body = TextAreaField(
        _l("Note"), validators=[DataRequired(REQUIRED), _too_long(20_000)], render_kw={"rows": 3}
    )


class EmailForm(Form):
    subject = StringField(_l("Subject"), validators=[DataRequired(REQUIRED), _too_long(200)])
    body = TextAreaField(
        _l("Message"), validators=[DataRequired(REQUIRED), _too_long(20_000)], render_kw={"rows": 5}
    )


class StageForm(Form):
    stage = SelectField(_l("Move to"), validators=[DataRequired(REQUIRED)])
    lost_reason = StringField(
        _l("Why was it lost?"), validators=[Optional(), _too_long(200)], description=_l("Required for Lost.")
    )
    trial_starts_on = DateField(_l("Trial starts (optional)"), validators=[Optional()])
    trial_ends_on = DateField(_l("Trial ends (optional)"), validators=[Optional()])
    customer_id = IntegerField(
        _l("Customer record no. (optional)"),
        validators=[Optional(), NumberRange(min=1, max=2**63 - 1)],
        description=_l(
            "For Won: the existing customer to link; empty finds or creates one by name and phone."
        ),
    )


class AssignForm(Form):
    assignee_id = SelectField(_l("Owner"), coerce=str)


class ConsentForm(Form):
    evidence_ref = StringField(
        _l("Where is the proof of consent?"),
        validators=[DataRequired(REQUIRED), _too_long(200)],
        description=_l("For example: the signed form's number, or the recorded call's reference."),
    )


class ConfirmForm(Form):
    """Only the CSRF token: one-button actions."""
