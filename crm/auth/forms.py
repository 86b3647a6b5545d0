"""Sign-in, account and user-admin forms."""

from flask_babel import lazy_gettext as _l
from wtforms import (
    BooleanField,
    DateField,
    EmailField,
    PasswordField,
    RadioField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, EqualTo, Length, Optional

from crm.access import ROLE_LABELS
from crm.auth.passwords import PASSWORD_MAX, PASSWORD_MIN
from crm.auth.scope import MAX_SCOPE_TICKETS, ScopeKind
from crm.forms import Form
from crm.i18n import LOCALE_NAMES

PASSWORD_LENGTH = Length(
    min=PASSWORD_MIN,
    max=PASSWORD_MAX,
    message=_l("Use %(min)d to %(max)d characters.", min=PASSWORD_MIN, max=PASSWORD_MAX),
)


def role_choices():
    return [SelectChoice(role.value, label) for role, label in ROLE_LABELS.items()]


class LoginForm(Form):
    email = EmailField(_l("Email"), validators=[DataRequired(_l("Enter your email.")), Length(max=254)])
    password = PasswordField(
        _l("Password"), validators=[DataRequired(_l("Enter your password.")), Length(max=128)]
    )


class LogoutForm(Form):
    """Only the CSRF token: signing out is a POST."""


class PasswordForm(Form):
    current_password = PasswordField(_l("Current password"), validators=[DataRequired(), Length(max=128)])
    new_password = PasswordField(_l("New password"), validators=[DataRequired(), PASSWORD_LENGTH])


class LanguageForm(Form):
    locale = SelectField(
        _l("Language"),
        choices=[SelectChoice("", _l("Organisation default"))]
        + [SelectChoice(code, name) for code, name in LOCALE_NAMES.items()],
        validators=[Optional()],
    )


SCOPE_LABELS = {
    ScopeKind.ALL: _l("All tickets"),
    ScopeKind.RECEIVED: _l("Tickets received between two dates"),
    ScopeKind.TICKETS: _l("These tickets only"),
}
# Room for MAX_SCOPE_TICKETS references as people type them ("RF-1001, ").
SCOPE_TICKETS_MAX_CHARS = MAX_SCOPE_TICKETS * 16


class AccessForm(Form):
    """A user's access window and, for an auditor, the tickets they may read. Days are
    the organisation's: access starts at the start of the first day and ends at the end
    of the last; a receipt range includes both of its days."""

    access_starts_on = DateField(
        _l("Access starts on"),
        validators=[Optional()],
        description=_l("Optional. The account cannot sign in before this date."),
    )
    access_expires_on = DateField(
        _l("Access ends on"),
        validators=[Optional()],
        description=_l("Optional. Access ends automatically on this date, for example for an auditor."),
    )
    scope_kind = RadioField(
        _l("Tickets an auditor may read"),
        choices=[SelectChoice(kind.value, label) for kind, label in SCOPE_LABELS.items()],
        default=ScopeKind.ALL.value,
        description=_l(
            "Other roles read every ticket. Outside the scope, a ticket does not exist for the auditor."
        ),
    )
    scope_received_from = DateField(_l("Received from"), validators=[Optional()])
    scope_received_until = DateField(_l("Received until"), validators=[Optional()])
    scope_tickets = TextAreaField(
        _l("Ticket numbers"),
        validators=[Optional(), Length(max=SCOPE_TICKETS_MAX_CHARS)],
        description=_l(
            "For example RF-1001, RF-1002: separated by commas, spaces or new lines; at most %(n)d.",
            n=MAX_SCOPE_TICKETS,
        ),
    )


class NewUserForm(AccessForm):
    email = EmailField(_l("Email"), validators=[DataRequired(), Length(max=254)])
    display_name = StringField(_l("Name"), validators=[Optional(), Length(max=200)])
    role = SelectField(_l("Role"), choices=role_choices)
    password = PasswordField(
        _l("Initial password"),
        validators=[DataRequired(), PASSWORD_LENGTH],
        description=_l("At least %(min)d characters. Share it with the person privately.", min=PASSWORD_MIN),
    )


class EditUserForm(AccessForm):
    role = SelectField(_l("Role"), choices=role_choices)
    active = BooleanField(_l("Active"))
    takes_leads = BooleanField(
        _l("Takes new leads"), description=_l("New leads are shared in turn among the people who take them.")
    )


class ForgotPasswordForm(Form):
    email = EmailField(_l("Email"), validators=[DataRequired(_l("Enter your email.")), Length(max=254)])


class ResetPasswordForm(Form):
    new_password = PasswordField(_l("New password"), validators=[DataRequired(), PASSWORD_LENGTH])
    confirm = PasswordField(
        _l("New password, again"),
        validators=[DataRequired(), EqualTo("new_password", message=_l("The two passwords differ."))],
    )


class SecondStepForm(Form):
    code = StringField(
        _l("Sign-in code"),
        validators=[DataRequired(_l("Enter the code.")), Length(max=32)],
        description=_l("The six digits your authenticator app shows now, or one of your recovery codes."),
    )


class TwoFactorSetupForm(Form):
    code = StringField(
        _l("The code your app shows"), validators=[DataRequired(_l("Enter the code.")), Length(max=32)]
    )


class TwoFactorOffForm(Form):
    password = PasswordField(
        _l("Your password"), validators=[DataRequired(_l("Enter your password.")), Length(max=128)]
    )
