"""Sign-in, sign-out, the user's own account page and the admin's user pages."""

from datetime import UTC, datetime, time
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user

from crm.access import client_ip, current_actor, requires
from crm.auth import service
from crm.auth.forms import EditUserForm, LanguageForm, LoginForm, LogoutForm, NewUserForm, PasswordForm
from crm.errors import DomainError
from crm.extensions import db
from crm.i18n import SESSION_KEY, SUPPORTED_LOCALES
from crm.tickets.queue import desk_summary
from crm.webforms import show_error
from tenants import current_tenant
from tenants.ext import URL_PREFIX

bp = Blueprint("auth", __name__, url_prefix=URL_PREFIX)


def _safe_next(target: str | None) -> str:
    """Follow ``next`` only within this tenant's own pages."""
    home = url_for("auth.home")
    if not target:
        return home
    parts = urlsplit(target)
    prefix = f"/t/{current_tenant().slug}/"
    if parts.scheme or parts.netloc or not parts.path.startswith(prefix):
        return home
    return target


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("auth.home"))
    form = LoginForm()
    status = 200
    if form.is_submitted():
        status = 400
        if form.validate():
            try:
                user = service.authenticate(form.email.data, form.password.data, ip=client_ip())
            except service.LoginRefused as refused:
                db.session.commit()
                if refused.locked:
                    minutes = current_app.config["LOGIN_LOCK_MINUTES"]
                    flash(
                        _("Too many failed sign-ins for this email. Try again in %(n)d minutes.", n=minutes),
                        "danger",
                    )
                    status = 429
                else:
                    flash(_("The email or password is not correct."), "danger")
                    status = 401
            else:
                db.session.commit()
                session.pop(SESSION_KEY, None)
                login_user(user)
                return redirect(_safe_next(request.args.get("next")))
    return render_template("auth/login.html", form=form), status


@bp.route("/logout", methods=["GET", "POST"])
def logout():
    form = LogoutForm()
    if request.method == "POST":  # CSRFProtect has checked the token already
        if current_user.is_authenticated:
            service.record_logout(current_user, ip=client_ip())
            db.session.commit()
            logout_user()
        flash(_("You are signed out."), "success")
        return redirect(url_for("auth.login"))
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login"))
    return render_template("auth/logout.html", form=form)


@bp.route("/language", methods=["POST"])
def choose_language():
    """The language switcher: remembered for this browser, and for the user if signed in."""
    locale = request.form.get("locale", "")
    if locale not in SUPPORTED_LOCALES:
        abort(400)
    session[SESSION_KEY] = locale
    if current_user.is_authenticated:
        service.set_locale(current_user, locale, actor=current_actor())
        db.session.commit()
    return redirect(_safe_next(request.form.get("next")))


@bp.route("/")
@requires("desk.view")
def home():
    return render_template("auth/home.html", desk=desk_summary(current_user.id))


@bp.route("/account", methods=["GET", "POST"])
@requires("account.edit")
def account():
    password_form = PasswordForm(prefix="pw")
    language_form = LanguageForm(prefix="lang", locale=current_user.locale or "")
    status = 200
    if request.method == "POST":
        status = 400
        if "pw-new_password" in request.form and password_form.validate():
            try:
                service.change_password(
                    current_user,
                    current=password_form.current_password.data,
                    new=password_form.new_password.data,
                    actor=current_actor(),
                )
            except DomainError as error:
                db.session.rollback()
                show_error(password_form, error)
                status = error.status
            else:
                db.session.commit()
                login_user(current_user._get_current_object())  # this session keeps going
                flash(_("Your password is changed. Your other sessions are signed out."), "success")
                return redirect(url_for("auth.account"))
        elif "lang-locale" in request.form and language_form.validate():
            service.set_locale(current_user, language_form.locale.data or None, actor=current_actor())
            db.session.commit()
            session.pop(SESSION_KEY, None)
            return redirect(url_for("auth.account"))
    return (
        render_template("auth/account.html", password_form=password_form, language_form=language_form),
        status,
    )


def _end_of_day(day, timezone: str) -> datetime:
    return datetime.combine(day, time(23, 59, 59), tzinfo=ZoneInfo(timezone)).astimezone(UTC)


@bp.route("/admin/users", methods=["GET", "POST"])
@requires("users.manage")
def users():
    form = NewUserForm()
    status = 200
    if form.is_submitted():
        status = 400
        if form.validate():
            expires = form.access_expires_on.data
            try:
                user = service.create_user(
                    email=form.email.data,
                    role=form.role.data,
                    password=form.password.data,
                    display_name=form.display_name.data,
                    created_by=current_user,
                    access_expires_at=_end_of_day(expires, current_tenant().timezone) if expires else None,
                    actor=current_actor(),
                )
            except DomainError as error:
                db.session.rollback()
                show_error(form, error)
                status = error.status
            else:
                db.session.commit()
                flash(_("%(email)s can now sign in.", email=user.email), "success")
                return redirect(url_for("auth.users"))
    return render_template("auth/users.html", form=form, users=service.list_users()), status


@bp.route("/admin/users/<int:user_id>", methods=["GET", "POST"])
@requires("users.manage")
def edit_user(user_id: int):
    user = service.user_by_id(user_id)
    if user is None:
        abort(404)
    form = EditUserForm(obj=user)
    status = 200
    if form.is_submitted():
        status = 400
        if form.validate():
            try:
                service.update_user(
                    user,
                    role=form.role.data,
                    active=form.active.data,
                    actor=current_actor(),
                    acting_user=current_user,
                )
            except DomainError as error:
                db.session.rollback()
                show_error(form, error)
                status = error.status
                user = service.user_by_id(user_id)
            else:
                db.session.commit()
                flash(_("Saved."), "success")
                return redirect(url_for("auth.users"))
    return render_template("auth/edit_user.html", form=form, user=user), status
