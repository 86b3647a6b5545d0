"""The admins' page for API keys: make one (shown once), see when each was last used,
revoke one."""

from datetime import UTC, datetime, time

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from wtforms import DateField, SelectChoice, SelectMultipleField, StringField, widgets
from wtforms.validators import DataRequired, Length, Optional

from crm.access import current_actor, requires
from crm.api import keys
from crm.api.models import SCOPES
from crm.errors import DomainError
from crm.forms import Form
from crm.webforms import in_one_transaction, show_error
from tenants.ext import URL_PREFIX

bp = Blueprint("api_keys", __name__, url_prefix=URL_PREFIX + "/admin/api-keys")


class KeyForm(Form):
    name = StringField(
        _l("Name"), validators=[DataRequired(), Length(max=100)], description=_l("e.g. Dialer, Billing")
    )
    scopes = SelectMultipleField(
        _l("Scopes"),
        choices=[SelectChoice(scope, scope) for scope in SCOPES],
        validators=[DataRequired(_l("Choose at least one scope."))],
        option_widget=widgets.CheckboxInput(),
        widget=widgets.ListWidget(prefix_label=False),
    )
    expires = DateField(_l("Expires after (optional)"), validators=[Optional()])


class RevokeForm(Form):
    """Only the CSRF token."""


@bp.route("", methods=["GET", "POST"])
@requires("api.manage")
def index():
    form = KeyForm()
    shown = None
    status = 200
    if form.is_submitted():
        status = 400
        if form.validate():
            expires_at = (
                datetime.combine(form.expires.data, time(23, 59, 59), UTC) if form.expires.data else None
            )
            try:
                made = in_one_transaction(
                    lambda: keys.create_key(
                        name=form.name.data,
                        scopes=form.scopes.data,
                        expires_at=expires_at,
                        actor=current_actor(),
                        user=current_user._get_current_object(),
                    )
                )
            except DomainError as error:
                show_error(form, error)
                status = error.status
            else:
                shown, status, form = made.secret, 201, KeyForm(formdata=None)
    return (
        render_template(
            "api/keys.html", form=form, keys=keys.list_keys(), shown=shown, revoke_form=RevokeForm()
        ),
        status,
    )


@bp.route("/<int:key_id>/revoke", methods=["POST"])
@requires("api.manage")
def revoke(key_id: int):
    key = keys.key_by_id(key_id)
    if key is None or not RevokeForm().validate():
        abort(404 if key is None else 400)
    try:
        in_one_transaction(lambda: keys.revoke_key(key, actor=current_actor()), done=_("The key is revoked."))
    except DomainError as error:
        flash(error.message, "danger")
    return redirect(url_for(".index"))
