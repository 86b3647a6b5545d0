"""The refund policy: public pages (the version in force, any published version, the
history) and the managers' pages (drafts, preview, compare, publish)."""

from zoneinfo import ZoneInfo

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import format_currency
from flask_babel import gettext as _
from flask_login import current_user

from crm.access import current_actor, requires
from crm.auth import service as auth
from crm.auth.forms import LogoutForm
from crm.columns import utcnow
from crm.errors import DomainError
from crm.i18n import page_locale
from crm.input_guard import INTEGER_MAX, query_int
from crm.policies import service
from crm.policies.forms import DraftForm, PublishForm
from crm.policies.models import PolicyVersion
from crm.webforms import in_one_transaction, show_error
from tenants import current_tenant
from tenants.ext import URL_PREFIX

bp = Blueprint("policies", __name__, url_prefix=URL_PREFIX)

STARTER_TERMS = {
    "cooling_off_days": 7,
    "prorate_unused_balance": True,
    "non_refundable_items": [],
    "handling_fee_percent": "0",
    "handling_fee_cap": None,
    "payout_days": 15,
    "required_evidence": [],
}


def _shown(version: PolicyVersion) -> dict:
    """What a page needs to show a version: its text in the page's language, rendered."""
    text, locale = service.text_for(version, page_locale())
    return {
        "version": version,
        "html": service.render(text),
        "text_locale": locale,
        "terms": service.terms_of(version),
    }


@bp.context_processor
def policy_helpers() -> dict:
    def policy_money(amount) -> str:
        return format_currency(amount, current_tenant().currency)

    return {"policy_money": policy_money, "now": utcnow()}


# --- public ------------------------------------------------------------------------------


@bp.route("/policy")
def in_force():
    version = service.in_force()
    if version is None:
        abort(404)
    return render_template("policies/public.html", current=True, **_shown(version))


@bp.route("/policy/<int32:number>")
def published(number: int):
    version = service.by_number(number, published_only=True)
    if version is None:
        abort(404)
    current = service.in_force()
    return render_template(
        "policies/public.html", current=current is not None and current.id == version.id, **_shown(version)
    )


@bp.route("/policy/history")
def history():
    return render_template("policies/history.html", history=service.published_history())


# --- managers ----------------------------------------------------------------------------


@bp.route("/admin/policies", methods=["GET", "POST"])
@requires("policies.manage")
def admin_list():
    if request.method == "POST":
        if not LogoutForm().validate():  # "new draft" sends nothing but its CSRF token
            abort(400)
        latest = next(iter(service.versions()), None)
        texts, terms = (latest.texts, latest.terms) if latest else (service.STARTER_TEXTS, STARTER_TERMS)
        try:
            number = in_one_transaction(
                lambda: (
                    service.create_draft(texts, terms, actor=current_actor(), user_id=current_user.id).number
                )
            )
        except DomainError as error:
            flash(error.message, "danger")
            return redirect(url_for(".admin_list"))
        flash(
            _("Draft version %(n)d created from the latest version.", n=number)
            if latest
            else _("Draft version %(n)d created: write the policy in place of the starter text.", n=number),
            "success",
        )
        return redirect(url_for(".admin_edit", number=number))
    return render_template(
        "policies/admin_list.html", versions=service.versions(), current=service.in_force()
    )


def _edit_page(version: PolicyVersion, form: DraftForm, publish_form: PublishForm, status: int = 200):
    return render_template(
        "policies/admin_edit.html",
        form=form,
        publish_form=publish_form,
        staff={user.id: user.display_name for user in auth.list_users()},
        previews=[
            {"locale": locale, "html": service.render(version.texts.get(locale, ""))}
            for locale in service.LOCALES
        ],
        **_shown(version),
    ), status


@bp.route("/admin/policies/<int32:number>", methods=["GET", "POST"])
@requires("policies.manage")
def admin_edit(number: int):
    version = service.by_number(number) or abort(404)
    publish_form = PublishForm(formdata=None)
    if request.method == "GET" or version.is_published:
        form = DraftForm(formdata=None)
        form.fill(version.texts, version.terms)
        return _edit_page(version, form, publish_form, 200 if request.method == "GET" else 409)
    form = DraftForm()
    if not form.validate():
        return _edit_page(version, form, publish_form, 400)
    try:
        changed = in_one_transaction(
            lambda: service.update_draft(version, form.texts(), form.terms(), actor=current_actor())
        )
    except DomainError as error:
        # A term's refusal starts with its key ("handling_fee_percent: …", for files); beside
        # its field the label says which term it is. A path into a list ("[1]") stays.
        if error.field and "[" not in error.field and error.message.startswith(f"{error.field}: "):
            error.message = error.message.removeprefix(f"{error.field}: ")
        error.field = error.field and error.field.split("[", 1)[0]
        show_error(form, error)
        return _edit_page(service.by_number(number), form, publish_form, error.status)
    flash(_("Draft saved; the preview below shows it.") if changed else _("Nothing changed."), "success")
    return redirect(url_for(".admin_edit", number=number))


@bp.route("/admin/policies/<int32:number>/publish", methods=["POST"])
@requires("policies.manage")
def admin_publish(number: int):
    version = service.by_number(number) or abort(404)
    publish_form = PublishForm()
    form = DraftForm(formdata=None)
    form.fill(version.texts, version.terms)
    if not publish_form.validate():
        return _edit_page(version, form, publish_form, 400)
    when = publish_form.effective_from.data
    if when is not None:
        when = when.replace(tzinfo=ZoneInfo(current_tenant().timezone))
    try:
        in_one_transaction(
            lambda: service.publish(
                version, effective_from=when, actor=current_actor(), user_id=current_user.id
            ),
            done=_("Version %(n)d is published.", n=number),
        )
    except DomainError as error:
        show_error(publish_form, error)
        return _edit_page(service.by_number(number), form, publish_form, error.status)
    return redirect(url_for(".admin_edit", number=number))


@bp.route("/admin/policies/compare")
@requires("policies.manage")
def admin_compare():
    old = service.by_number(query_int("a", maximum=INTEGER_MAX) or 0)
    new = service.by_number(query_int("b", maximum=INTEGER_MAX) or 0)
    if old is None or new is None:
        flash(_("Choose two versions to compare."), "warning")
        return redirect(url_for(".admin_list"))
    return render_template("policies/compare.html", old=old, new=new, lines=service.diff(old, new))
