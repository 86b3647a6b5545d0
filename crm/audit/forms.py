"""The audit page's filter form (a GET form, so a filtered view can be bookmarked)."""

from email_validator import EmailNotValidError, validate_email
from flask_babel import lazy_gettext as _l
from wtforms import DateField, IntegerField, StringField, TextAreaField
from wtforms.validators import Length, NumberRange, Optional, ValidationError

from crm.forms import Form
from crm.input_guard import BIGINT_MAX, sane_date


class AuditFilterForm(Form):
    class Meta:
        csrf = False

    actor = StringField(_l("Actor"), validators=[Optional(), Length(max=200)])
    action = StringField(_l("Action"), validators=[Optional(), Length(max=64)])
    subject_type = StringField(_l("Subject type"), validators=[Optional(), Length(max=32)])
    subject_id = StringField(
        _l("Subject ID"),
        validators=[Optional(), Length(max=64)],
        description=_l("An id, or a ticket's reference such as RF-1009"),
    )
    since = DateField(_l("From"), validators=[Optional(), sane_date])
    until = DateField(_l("To"), validators=[Optional(), sane_date])
    # The page link's cursor: an event's sequence number.
    before = IntegerField(validators=[Optional(), NumberRange(min=1, max=BIGINT_MAX)])


MAX_WITNESSES = 10


def _witness_addresses(form, field) -> None:
    """One address per line, each a valid email; at most ``MAX_WITNESSES``."""
    lines = [line.strip() for line in (field.data or "").splitlines() if line.strip()]
    if len(lines) > MAX_WITNESSES:
        raise ValidationError(_l("At most %(n)d witnesses.", n=MAX_WITNESSES))
    addresses = []
    for line in lines:
        try:
            addresses.append(validate_email(line, check_deliverability=False).normalized)
        except EmailNotValidError:
            raise ValidationError(_l("%(line)s is not an email address.", line=line[:80])) from None
    if len({address.lower() for address in addresses}) != len(addresses):
        raise ValidationError(_l("An address is listed twice."))
    field.addresses = addresses


class WitnessForm(Form):
    witnesses = TextAreaField(
        _l("Witness addresses"),
        validators=[Length(max=3000), _witness_addresses],
        description=_l(
            "One email address per line, up to 10: a regulator's inbox, your lawyer, an "
            "auditor. Each new checkpoint is mailed to them."
        ),
        render_kw={"rows": 4, "autocomplete": "off"},
    )
