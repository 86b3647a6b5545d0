"""The staff member's choice of how notifications reach them (on the account page)."""

from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, RadioField, SelectChoice
from wtforms.validators import InputRequired

from crm.forms import Form

NOTIFICATION_CHOICES = [
    SelectChoice("on", _l("In the app and by email")),
    SelectChoice("off", _l("In the app only")),
]


class NotificationsForm(Form):
    email_notifications = RadioField(
        _l("Notifications"),
        choices=NOTIFICATION_CHOICES,
        validators=[InputRequired(_l("Choose how notifications reach you."))],
        description=_l(
            "Deadlines near or missed, customers' replies, customers not satisfied, and refund "
            "decisions waiting for your approval."
        ),
    )
    weekly_digest = BooleanField(
        _l("Weekly report by email"),
        description=_l(
            "Mondays from 09:00: last week's SLA attainment, complaints, breaches and overdue payouts."
        ),
    )
