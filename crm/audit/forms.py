"""The audit page's filter form (a GET form, so a filtered view can be bookmarked)."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, IntegerField, StringField
from wtforms.validators import Length, NumberRange, Optional

from crm.input_guard import BIGINT_MAX, sane_date


class AuditFilterForm(FlaskForm):
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
