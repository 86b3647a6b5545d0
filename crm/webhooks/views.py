"""The admins' webhooks page: endpoints, their secrets (shown once), the delivery log
with every attempt, replay, enable and disable."""

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from wtforms import SelectChoice, SelectMultipleField, URLField, widgets
from wtforms.validators import DataRequired, Length

from crm.access import current_actor, requires
from crm.errors import DomainError
from crm.forms import Form
from crm.webforms import in_one_transaction, show_error
from crm.webhooks import service
from crm.webhooks.models import EVENTS
from tenants.ext import URL_PREFIX

bp = Blueprint("webhooks", __name__, url_prefix=URL_PREFIX + "/admin/webhooks")


class EndpointForm(Form):
    url = URLField(
        _l("URL"), validators=[DataRequired(), Length(max=500)], description=_l("Where events are POSTed.")
    )
    events = SelectMultipleField(
        _l("Events"),
        choices=[SelectChoice(event, event) for event in EVENTS],
        validators=[DataRequired(_l("Choose at least one event."))],
        option_widget=widgets.CheckboxInput(),
        widget=widgets.ListWidget(prefix_label=False),
    )


class ButtonForm(Form):
    """Only the CSRF token."""


@bp.route("", methods=["GET", "POST"])
@requires("api.manage")
def index():
    form = EndpointForm()
    secret, status = None, 200
    if form.is_submitted():
        status = 400
        if form.validate():
            try:
                endpoint = in_one_transaction(
                    lambda: service.create_endpoint(
                        form.url.data,
                        form.events.data,
                        actor=current_actor(),
                        user=current_user._get_current_object(),
                    )
                )
            except DomainError as error:
                show_error(form, error)
                status = error.status
            else:
                secret, status, form = endpoint.secret, 201, EndpointForm(formdata=None)
    return (
        render_template("webhooks/index.html", form=form, endpoints=service.list_endpoints(), secret=secret),
        status,
    )


def _endpoint_or_404(endpoint_id: int):
    endpoint = service.endpoint_by_id(endpoint_id)
    if endpoint is None:
        abort(404)
    return endpoint


@bp.route("/<int:endpoint_id>")
@requires("api.manage")
def show(endpoint_id: int):
    endpoint = _endpoint_or_404(endpoint_id)
    return render_template(
        "webhooks/show.html",
        endpoint=endpoint,
        deliveries=service.deliveries_of(endpoint),
        button=ButtonForm(),
    )


@bp.route("/<int:endpoint_id>/<any(enable, disable):action>", methods=["POST"])
@requires("api.manage")
def toggle(endpoint_id: int, action: str):
    endpoint = _endpoint_or_404(endpoint_id)
    if not ButtonForm().validate():
        abort(400)
    in_one_transaction(
        lambda: service.set_active(endpoint, action == "enable", actor=current_actor()),
        done=_("The endpoint is enabled.") if action == "enable" else _("The endpoint is disabled."),
    )
    return redirect(url_for(".show", endpoint_id=endpoint_id))


@bp.route("/<int:endpoint_id>/deliveries/<int:delivery_id>/replay", methods=["POST"])
@requires("api.manage")
def replay(endpoint_id: int, delivery_id: int):
    _endpoint_or_404(endpoint_id)
    delivery = service.delivery_by_id(delivery_id)
    if delivery is None or delivery.endpoint_id != endpoint_id or not ButtonForm().validate():
        abort(404)
    try:
        in_one_transaction(lambda: service.replay(delivery, actor=current_actor()), done=_("Sent again."))
    except DomainError as error:
        flash(error.message, "danger")
    return redirect(url_for(".show", endpoint_id=endpoint_id))
