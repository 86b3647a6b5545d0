"""Sign-in, account and user-admin forms."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, DateField, EmailField, PasswordField, SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional

from crm.access import ROLE_LABELS
from crm.auth.passwords import PASSWORD_MAX, PASSWORD_MIN
from crm.i18n import LOCALE_NAMES

PASSWORD_LENGTH = Length(
    min=PASSWORD_MIN,
    max=PASSWORD_MAX,
    message=_l("Use %(min)d to %(max)d characters.", min=PASSWORD_MIN, max=PASSWORD_MAX),
)


def role_choices():
    return [SelectChoice(role.value, label) for role, label in ROLE_LABELS.items()]


class LoginForm(FlaskForm):
    email = EmailField(_l("Email"), validators=[DataRequired(_l("Enter your email.")), Length(max=254)])
    password = PasswordField(
        _l("Password"), validators=[DataRequired(_l("Enter your password.")), Length(max=128)]
    )


class LogoutForm(FlaskForm):
    """Only the CSRF token: signing out is a POST."""


class PasswordForm(FlaskForm):
    current_password = PasswordField(_l("Current password"), validators=[DataRequired(), Length(max=128)])
    new_password = PasswordField(_l("New password"), validators=[DataRequired(), PASSWORD_LENGTH])


class LanguageForm(FlaskForm):
    locale = SelectField(
        _l("Language"),
        choices=[SelectChoice("", _l("Organisation default"))]
        + [SelectChoice(code, name) for code, name in LOCALE_NAMES.items()],
        validators=[Optional()],
    )


class NewUserForm(FlaskForm):
    email = EmailField(_l("Email"), validators=[DataRequired(), Length(max=254)])
    display_name = StringField(_l("Name"), validators=[Optional(), Length(max=200)])
    role = SelectField(_l("Role"), choices=role_choices)
    password = PasswordField(
        _l("Initial password"),
        validators=[DataRequired(), PASSWORD_LENGTH],
        description=_l("At least %(min)d characters. Share it with the person privately.", min=PASSWORD_MIN),
    )
    access_expires_on = DateField(
        _l("Access ends on"),
        validators=[Optional()],
        description=_l("Optional. Access ends automatically on this date, for example for an auditor."),
    )


class EditUserForm(FlaskForm):
    role = SelectField(_l("Role"), choices=role_choices)
    active = BooleanField(_l("Active"))
