"""The admin's page for their organisation's settings."""

from flask import Blueprint, redirect, render_template, url_for
from flask_babel import gettext as _

from crm.access import current_actor, requires
from crm.errors import DomainError
from crm.money import from_minor_units
from crm.provisioning import service
from crm.provisioning.forms import SettingsForm
from crm.webforms import in_one_transaction, show_error
from tenants import current_tenant
from tenants.ext import URL_PREFIX

bp = Blueprint("settings", __name__, url_prefix=URL_PREFIX)


@bp.route("/admin/settings", methods=["GET", "POST"])
@requires("settings.manage")
def edit():
    settings = service.tenant_settings()
    form = SettingsForm(obj=settings)
    if not form.is_submitted():
        form.approval_threshold.data = int(
            from_minor_units(settings.approval_threshold_minor, current_tenant().currency)
        )
        form.accepted_currencies.data = settings.accepted_currencies.replace(",", ", ")
    status = 200
    if form.is_submitted():
        status = 400
        if form.validate():
            try:
                in_one_transaction(
                    lambda: service.update_settings(form.data, actor=current_actor()),
                    done=_("Settings saved."),
                )
            except DomainError as error:
                show_error(form, error)
                status = error.status
            else:
                return redirect(url_for("settings.edit"))
    return render_template("provisioning/settings.html", form=form), status
