"""The hosted form's fields. Their names are a public contract: providers link to and
embed the form."""

from flask_babel import lazy_gettext as _l
from wtforms import (
    BooleanField,
    DateField,
    EmailField,
    HiddenField,
    MultipleFileField,
    SelectChoice,
    SelectField,
    StringField,
    TelField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from crm.customers.service import normalise_phone
from crm.errors import DomainError
from crm.files.sniff import ACCEPTED_FILES
from crm.forms import Form
from crm.mail_addresses import check_email
from crm.provisioning.service import tenant_settings
from crm.tickets import service as tickets
from crm.tickets.models import Reason

REASON_LABELS = {
    Reason.SERVICE_NOT_AS_DESCRIBED: _l("The service was not as described"),
    Reason.UNUSED_BALANCE: _l("Refund of unused balance"),
    Reason.CANCELLED_CONTRACT: _l("I cancelled the contract"),
    Reason.UNAUTHORIZED_CHARGE: _l("A charge I did not authorise"),
    Reason.DUPLICATE_CHARGE: _l("I was charged twice"),
    Reason.OTHER: _l("Something else"),
}
REQUIRED = _l("This field is required.")


def _too_long(n: int):
    return Length(max=n, message=_l("Use at most %(n)d characters.", n=n))


# What a person fills in (not the tokens or the honeypot).
PERSON_FIELDS = frozenset(
    {"name", "phone", "email", "account_ref", "purchase_date", "amount", "currency", "reason"}
    | {"description", "attachments", "consent"}
)


class RefundForm(Form):
    name = StringField(_l("Your name"), validators=[DataRequired(REQUIRED), _too_long(200)])
    phone = TelField(
        _l("Phone number"),
        validators=[DataRequired(REQUIRED), _too_long(40)],
        description=_l("The number on your account, so we can find it and call you back."),
    )
    email = EmailField(
        _l("Email (optional)"),
        validators=[Optional(), _too_long(254)],
        description=_l("We send your receipt and every answer here."),
    )
    account_ref = StringField(
        _l("Account or contract number (optional)"), validators=[Optional(), _too_long(100)]
    )
    purchase_date = DateField(_l("Date of purchase (optional)"), validators=[Optional()])
    amount = StringField(
        _l("Amount you ask back (optional)"),
        validators=[Optional(), _too_long(20)],
        render_kw={"inputmode": "decimal", "placeholder": "199.00"},
    )
    currency = HiddenField(_l("Currency"))
    reason = SelectField(
        _l("Reason"),
        choices=[SelectChoice(reason.value, label) for reason, label in REASON_LABELS.items()],
        validators=[DataRequired(REQUIRED)],
    )
    description = TextAreaField(
        _l("What happened?"),
        validators=[DataRequired(REQUIRED), _too_long(20_000)],
        description=_l("Dates, amounts, what you were told. The more precise, the faster we can decide."),
        render_kw={"rows": 6},
    )
    attachments = MultipleFileField(
        _l("Evidence (optional)"),
        description=_l(
            "Up to 5 files, 10 MB each: PDF, images, text, emails, call recordings (MP3, WAV, M4A)."
        ),
        render_kw={"accept": ACCEPTED_FILES},
    )
    consent = BooleanField(
        _l("Consent"), validators=[DataRequired(_l("Please agree so that we can handle your request."))]
    )
    submission_token = HiddenField(validators=[DataRequired()])
    # Honeypot: invisible to people, filled in by bots.
    website = StringField(_l("Leave this empty"))

    # Each field is checked by the rules the service applies, so one submit shows every
    # mistake at once; the service checks again (it is the authority).
    def validate_phone(self, field) -> None:
        _as_field_error(normalise_phone, field.data, tenant_settings().country)

    def validate_email(self, field) -> None:
        _as_field_error(check_email, field.data)

    def validate_currency(self, field) -> None:
        _as_field_error(tickets.check_currency, field.data)

    def validate_amount(self, field) -> None:
        try:  # read in the chosen currency; one the tenant does not take is the currency's error
            currency = tickets.check_currency(self.currency.data)
        except DomainError:
            currency = tickets.check_currency(None)
        _as_field_error(tickets.check_claimed_amount, field.data, currency)

    def validate_purchase_date(self, field) -> None:
        _as_field_error(tickets.check_purchase_date, field.data)

    @property
    def visible_errors(self) -> list[tuple]:
        """(field, first error) for every field a person can see and correct, in page order."""
        return [(field, field.errors[0]) for field in self if field.errors and field.name in PERSON_FIELDS]


def _as_field_error(check, *args) -> None:
    try:
        check(*args)
    except DomainError as error:
        raise ValidationError(error.message) from None


class CustomerReplyForm(Form):
    body = TextAreaField(
        _l("Your message"), validators=[DataRequired(REQUIRED), _too_long(20_000)], render_kw={"rows": 4}
    )
    attachments = MultipleFileField(_l("Add evidence (optional)"), render_kw={"accept": ACCEPTED_FILES})


class NotSatisfiedForm(Form):
    body = TextAreaField(
        _l("What is wrong with the result? (optional)"), validators=[Optional(), _too_long(20_000)]
    )


class ConfirmForm(Form):
    """Only the CSRF token: for one-button actions such as withdrawing."""
