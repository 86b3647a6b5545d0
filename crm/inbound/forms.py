"""The admin's form for the IMAP mailbox the desk fetches inbound mail from."""

from flask_babel import lazy_gettext as _l
from wtforms import IntegerField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Length, NumberRange, Optional, Regexp

from crm.forms import Form
from crm.webforms import label_choices

SECURITY_LABELS = {
    "imaps": _l("IMAP over TLS (usually port 993)"),
    "imap": _l("IMAP without encryption (usually port 143; only on your own network)"),
}


class MailboxForm(Form):
    security = SelectField(_l("Connection"), choices=label_choices(SECURITY_LABELS), default="imaps")
    host = StringField(
        _l("Mail server"),
        validators=[
            DataRequired(),
            Length(max=253),
            # A name or an IPv4 address, nothing a URL would read as more (an "@", a "/").
            Regexp(
                r"^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$",
                message=_l("Give the server's name, such as imap.example.com."),
            ),
        ],
        render_kw={"placeholder": "imap.example.com"},
    )
    port = IntegerField(
        _l("Port"),
        validators=[Optional(), NumberRange(min=1, max=65535)],
        description=_l("Leave empty for the usual port."),
    )
    user = StringField(_l("User name"), validators=[DataRequired(), Length(max=254)])
    password = PasswordField(
        _l("Password"),
        validators=[Length(max=200)],
        description=_l("Kept encrypted, never shown again. Leave empty to keep the one saved."),
    )
    folder = StringField(_l("Folder"), default="INBOX", validators=[DataRequired(), Length(max=100)])
