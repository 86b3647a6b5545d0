"""Sign-in, sign-out, the user's own account page and the admin's user pages."""

import math
import time as time_module
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    abort,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import format_timedelta
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user
from markupsafe import Markup
from werkzeug.security import check_password_hash

from crm.access import can, client_ip, current_actor, requires
from crm.auth import resets, scope, service, sessions, two_factor
from crm.auth.forms import (
    SCOPE_LABELS,
    AccessForm,
    EditUserForm,
    ForgotPasswordForm,
    LanguageForm,
    LoginForm,
    LogoutForm,
    NewUserForm,
    PasswordForm,
    ResetPasswordForm,
    SecondStepForm,
    TwoFactorOffForm,
    TwoFactorSetupForm,
)
from crm.auth.models import User
from crm.auth.passwords import PASSWORD_MIN
from crm.auth.scope import ScopeKind
from crm.columns import utcnow
from crm.errors import DomainError
from crm.extensions import db
from crm.i18n import SESSION_KEY, SUPPORTED_LOCALES
from crm.leads.listing import lead_summary
from crm.notify import staff as staff_notices
from crm.notify.forms import NotificationsForm
from crm.ratelimit import limit
from crm.reports import digest as report_digest
from crm.templating import local_time
from crm.tickets.queue import desk_summary
from crm.webforms import in_one_transaction, show_error
from tenants import current_tenant
from tenants.ext import URL_PREFIX

bp = Blueprint("auth", __name__, url_prefix=URL_PREFIX)


def _safe_next(target: str | None) -> str:
    """Follow ``next`` only within this tenant's own pages: a path on this site, with no
    control characters (a CR/LF would split the Location header), no backslash
    (browsers read it as a slash) and nothing a browser could take for another host."""
    home = url_for("auth.home")
    if not target or len(target) > 2000:
        return home
    if any(ord(char) < 0x20 or ord(char) == 0x7F or char == "\\" for char in target):
        return home
    parts = urlsplit(target)
    prefix = f"/t/{current_tenant().slug}/"
    if parts.scheme or parts.netloc or not parts.path.startswith(prefix):
        return home
    return target


def _forget_signed_in_user() -> None:
    """Drop Flask-Login's keys from the cookie, as logout_user does (which cannot be
    called from inside the user loader)."""
    for key in ("_user_id", "_fresh", "_id"):
        session.pop(key, None)


def _period(minutes: int) -> str:
    """Whole hours (or days) as such, other spans in minutes, in the page's language."""
    span = timedelta(minutes=minutes)
    if minutes % 60 == 0:
        return format_timedelta(span, threshold=1)
    return format_timedelta(span, granularity="minute", threshold=10**9)


def window_closed_message(user: User) -> str:
    """Why ``user`` cannot be signed in now: when their access starts, or when it ended."""
    if user.access_state() == "not_started":
        return _(
            "Your access starts on %(when)s; you cannot sign in before then.",
            when=local_time(user.access_starts_at),
        )
    return _(
        "Your access ended on %(when)s. Ask an admin of your organisation to extend it.",
        when=local_time(user.access_expires_at),
    )


def load_signed_in_user(session_id: str) -> User | None:
    """Flask-Login's user loader: the user of this request's session, if it is live in
    the tenant of the URL, with the rest of the request confined to the tickets the user
    may read. A session found idle too long, or outside the account's access window,
    ends here; the person then meets the sign-in page, told why."""
    if current_tenant() is None:
        return None
    resumed = sessions.resume_session(session_id)
    if resumed.changed:
        db.session.commit()
    if resumed.idle_minutes is not None:
        _forget_signed_in_user()
        g.signed_out_after_idle = resumed.idle_minutes
    if resumed.outside_window is not None:
        _forget_signed_in_user()
        g.signed_out_outside_window = resumed.outside_window
    scope.enter_request_scope(resumed.user)
    return resumed.user


@bp.before_app_request
def resume_session_first() -> None:
    """Load the signed-in user before the view runs, so the session's bookkeeping
    (last seen, idle end) commits on its own, never inside a view's transaction; say
    so when it has just ended for idleness (here, once the page's language no longer
    depends on the user being loaded)."""
    if current_tenant() is None or "_user_id" not in session:
        return
    current_user._get_current_object()
    if "signed_out_outside_window" in g:
        flash(window_closed_message(g.pop("signed_out_outside_window")), "warning")
    if "signed_out_after_idle" in g:
        flash(
            _(
                "You were signed out after %(period)s without activity. Sign in again to continue.",
                period=_period(g.pop("signed_out_after_idle")),
            ),
            "warning",
        )


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
                user = service.authenticate(
                    form.email.data,
                    form.password.data,
                    ip=client_ip(),
                    user_agent=request.headers.get("User-Agent"),
                )
            except service.LoginRefused as refused:
                db.session.commit()
                if refused.locked:
                    return _sign_in_paused(form, refused)
                if refused.outside_window is not None:
                    flash(window_closed_message(refused.outside_window), "danger")
                    status = 403
                else:
                    flash(_("The email or password is not correct."), "danger")
                    status = 401
            else:
                db.session.commit()
                session.pop(SESSION_KEY, None)
                if two_factor.enabled(user):
                    session[SECOND_STEP_KEY] = {
                        "user": user.id,
                        "generation": user.session_token,
                        "at": int(time_module.time()),
                        "next": request.args.get("next"),
                    }
                    return redirect(url_for("auth.second_step"))
                login_user(user)
                return redirect(_safe_next(request.args.get("next")))
    return render_template("auth/login.html", form=form), status


SECOND_STEP_KEY = "second_step"
SECOND_STEP_SECONDS = 300  # to enter the code after the password


def _pending_second_step() -> User | None:
    """The user whose password this browser gave moments ago, waiting for the code."""
    pending = session.get(SECOND_STEP_KEY)
    if not isinstance(pending, dict) or int(time_module.time()) - pending.get("at", 0) > SECOND_STEP_SECONDS:
        return None
    user = service.user_by_id(pending.get("user", 0))
    if user is None or user.session_token != pending.get("generation") or not user.is_active:
        return None
    return user if two_factor.enabled(user) else None


@bp.route("/login/code", methods=["GET", "POST"])
def second_step():
    """The second step of signing in: a code from the authenticator app, or a recovery code."""
    if current_user.is_authenticated:
        return redirect(url_for("auth.home"))
    user = _pending_second_step()
    if user is None:
        session.pop(SECOND_STEP_KEY, None)
        flash(_("Sign in again: the code is asked for within 5 minutes of the password."), "warning")
        return redirect(url_for("auth.login"))
    form = SecondStepForm()
    status = 200
    if form.is_submitted():
        status = 400
        if form.validate():
            try:
                used = service.confirm_second_step(
                    user, form.code.data, ip=client_ip(), user_agent=request.headers.get("User-Agent")
                )
            except service.LoginRefused as refused:
                db.session.commit()
                if refused.locked:
                    session.pop(SECOND_STEP_KEY, None)
                    return _sign_in_paused(LoginForm(formdata=None), refused)
                flash(_("That code is not right."), "danger")
                status = 401
            else:
                left = len(user.recovery_codes or [])
                db.session.commit()
                target = session.pop(SECOND_STEP_KEY, {}).get("next")
                login_user(user)
                if used == "recovery":
                    flash(
                        _(
                            "You used a recovery code: %(n)d are left. Make new ones on your account page.",
                            n=left,
                        ),
                        "warning",
                    )
                return redirect(_safe_next(target))
    return render_template("auth/second_step.html", form=form), status


def _sign_in_paused(form: LoginForm, refused: service.LoginRefused):
    """The sign-in page, answering 429 with Retry-After, saying for how long and why."""
    minutes = max(1, math.ceil(refused.retry_after / 60))
    if refused.scope == "source":
        message = _(
            "Too many failed sign-ins from your network. Try again in %(n)d minutes.",
            n=minutes,
        )
    else:
        message = _("Too many failed sign-ins for this email. Try again in %(n)d minutes.", n=minutes)
    flash(message, "danger")
    headers = {"Retry-After": str(max(1, refused.retry_after))}
    return render_template("auth/login.html", form=form), 429, headers


@bp.route("/logout", methods=["GET", "POST"])
def logout():
    form = LogoutForm()
    if request.method == "POST":  # CSRFProtect has checked the token already
        if current_user.is_authenticated:
            in_one_transaction(lambda: sessions.end_session(current_user, ip=client_ip()))
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
        in_one_transaction(lambda: service.set_locale(current_user, locale, actor=current_actor()))
    return redirect(_safe_next(request.form.get("next")))


@bp.route("/")
@requires("desk.view")
def home():
    leads = lead_summary(current_user.id) if can(current_user, "leads.view") else None
    return render_template("auth/home.html", desk=desk_summary(current_user.id), leads=leads)


@bp.route("/account", methods=["GET", "POST"])
@requires("account.edit")
def account():
    password_form = PasswordForm(prefix="pw")
    language_form = LanguageForm(prefix="lang", locale=current_user.locale or "")
    by_email = "on" if staff_notices.wants_email(current_user) else "off"
    notify_form = NotificationsForm(
        prefix="notify", email_notifications=by_email, weekly_digest=current_user.weekly_digest
    )
    status = 200
    if request.method == "POST":
        status = 400
        if "pw-new_password" in request.form and password_form.validate():
            try:
                in_one_transaction(
                    lambda: service.change_password(
                        current_user,
                        current=password_form.current_password.data,
                        new=password_form.new_password.data,
                        actor=current_actor(),
                    ),
                    done=_("Your password is changed. Your other sessions are signed out."),
                )
            except DomainError as error:
                show_error(password_form, error)
                status = error.status
            else:
                login_user(current_user._get_current_object())  # this session keeps going
                return redirect(url_for("auth.account"))
        elif "lang-locale" in request.form and language_form.validate():
            in_one_transaction(
                lambda: service.set_locale(
                    current_user, language_form.locale.data or None, actor=current_actor()
                )
            )
            session.pop(SESSION_KEY, None)
            return redirect(url_for("auth.account"))
        elif "notify-email_notifications" in request.form and notify_form.validate():
            wanted = notify_form.email_notifications.data == "on"
            weekly = notify_form.weekly_digest.data and can(current_user, "reports.view")

            def save() -> None:
                staff_notices.set_email_notifications(current_user, wanted, actor=current_actor())
                report_digest.set_weekly_digest(current_user, bool(weekly), actor=current_actor())

            in_one_transaction(save, done=_("Your notification settings are saved."))
            return redirect(url_for("auth.account"))
    return (
        render_template(
            "auth/account.html",
            password_form=password_form,
            language_form=language_form,
            notify_form=notify_form,
            staff_sessions=sessions.live_sessions(current_user),
            current_session_id=sessions.current_session_id(current_user),
            browser_of=sessions.browser_of,
        ),
        status,
    )


@bp.route("/account/sessions/<int:session_id>/end", methods=["POST"])
@requires("account.edit")
def end_session(session_id: int):
    """End one of the user's other sessions (another browser, a lost phone)."""
    ended = in_one_transaction(
        lambda: sessions.end_own_sessions(current_user, [session_id], actor=current_actor())
    )
    if ended:
        flash(_("That session is signed out."), "success")
    else:
        flash(_("That session had already ended."), "info")
    return redirect(url_for("auth.account", _anchor="sessions"))


@bp.route("/account/sessions/end-others", methods=["POST"])
@requires("account.edit")
def end_other_sessions():
    ended = in_one_transaction(lambda: sessions.end_own_sessions(current_user, None, actor=current_actor()))
    flash(_("%(n)d other sessions signed out.", n=len(ended)), "success")
    return redirect(url_for("auth.account", _anchor="sessions"))


def _local_midnight(day: date, field: str) -> datetime:
    """The start of ``day`` in the organisation's time zone, as a UTC instant."""
    try:
        return datetime.combine(day, time(), tzinfo=ZoneInfo(current_tenant().timezone)).astimezone(UTC)
    except OverflowError:
        raise DomainError(_("This date is out of range."), field) from None


def _next_midnight(day: date, field: str) -> datetime:
    """The end of ``day`` in the organisation's time zone (the next day's start)."""
    try:
        return _local_midnight(day + timedelta(days=1), field)
    except OverflowError:
        raise DomainError(_("This date is out of range."), field) from None


def _end_of_day(day: date) -> datetime:
    """The last second of ``day`` there: when an account "ends on" that day (kept as it
    always was, so existing end times read the same)."""
    return _next_midnight(day, "access_expires_on") - timedelta(seconds=1)


def _access_asked(form: AccessForm) -> service.Access:
    """The window and scope the admin asked for, as instants and ticket numbers; the
    scope's fields of the kinds not chosen are ignored."""
    kind = form.scope_kind.data or ScopeKind.ALL
    starts, ends = form.access_starts_on.data, form.access_expires_on.data
    received_from, received_until = form.scope_received_from.data, form.scope_received_until.data
    received = kind == ScopeKind.RECEIVED
    return service.Access(
        starts_at=_local_midnight(starts, "access_starts_on") if starts else None,
        expires_at=_end_of_day(ends) if ends else None,
        scope_kind=kind,
        received_from=_local_midnight(received_from, "scope_received_from")
        if received and received_from
        else None,
        received_before=_next_midnight(received_until, "scope_received_until")
        if received and received_until
        else None,
        ticket_numbers=service.parse_ticket_numbers(form.scope_tickets.data)
        if kind == ScopeKind.TICKETS
        else (),
    )


def _fill_access(form: AccessForm, user: User) -> None:
    """Show ``user``'s window and scope on the edit form, in the organisation's days."""
    zone = ZoneInfo(current_tenant().timezone)

    def day(moment: datetime | None, shift: timedelta = timedelta()) -> date | None:
        return (moment.astimezone(zone) + shift).date() if moment else None

    form.access_starts_on.data = day(user.access_starts_at)
    form.access_expires_on.data = day(user.access_expires_at)
    form.scope_kind.data = user.scope_kind or ScopeKind.ALL
    form.scope_received_from.data = day(user.scope_received_from)
    form.scope_received_until.data = day(user.scope_received_before, -timedelta(days=1))
    form.scope_tickets.data = ", ".join(service.ticket_references(user.scope_ticket_ids or ()))


def _created_message(user: User) -> str:
    if user.access_starts_at and user.access_starts_at > utcnow():
        return _(
            "%(email)s can sign in from %(when)s.", email=user.email, when=local_time(user.access_starts_at)
        )
    return _("%(email)s can now sign in.", email=user.email)


@bp.route("/admin/users", methods=["GET", "POST"])
@requires("users.manage")
def users():
    form = NewUserForm()
    status = 200
    if form.is_submitted():
        status = 400
        if form.validate():
            try:
                said = in_one_transaction(
                    lambda: _created_message(
                        service.create_user(
                            email=form.email.data,
                            role=form.role.data,
                            password=form.password.data,
                            display_name=form.display_name.data,
                            created_by=current_user,
                            access=_access_asked(form),
                            actor=current_actor(),
                        )
                    )
                )
            except DomainError as error:
                show_error(form, error)
                status = error.status
            else:
                flash(said, "success")
                return redirect(url_for("auth.users"))
    return (
        render_template("auth/users.html", form=form, users=service.list_users(), scope_labels=SCOPE_LABELS),
        status,
    )


@bp.route("/admin/users/<int:user_id>", methods=["GET", "POST"])
@requires("users.manage")
def edit_user(user_id: int):
    user = service.user_by_id(user_id)
    if user is None:
        abort(404)
    form = EditUserForm(obj=user)
    status = 200
    if not form.is_submitted():
        _fill_access(form, user)
    else:
        status = 400
        if form.validate():
            try:
                in_one_transaction(
                    lambda: service.update_user(
                        user,
                        role=form.role.data,
                        active=form.active.data,
                        actor=current_actor(),
                        acting_user=current_user,
                        access=_access_asked(form),
                        takes_leads=form.takes_leads.data,
                    ),
                    done=_("Saved."),
                )
            except DomainError as error:
                show_error(form, error)
                status = error.status
                user = service.user_by_id(user_id)
            else:
                return redirect(url_for("auth.users"))
    return render_template(
        "auth/edit_user.html", form=form, user=user, reset_minutes=resets.RESET_MINUTES
    ), status


# The sign-in page's "forgot password", from one address: against floods, not people (a
# person asks once or twice; each account also gets at most three links an hour).
FORGOT_POSTS_PER_ADDRESS = "20/hour"


RESET_PAGE = {"minutes": resets.RESET_MINUTES, "password_min": PASSWORD_MIN}


def _tenant_address() -> str:
    return f"{current_tenant().slug}:{client_ip()}"


@bp.route("/login/forgot", methods=["GET", "POST"])
@limit(FORGOT_POSTS_PER_ADDRESS, key=_tenant_address, methods=("POST",))
def forgot_password():
    """Ask for a link to choose a new password. The answer is the same whether or not an
    account has the address."""
    form = ForgotPasswordForm()
    if form.is_submitted():
        if not form.validate():
            return render_template("auth/forgot.html", form=form, **RESET_PAGE), 400
        in_one_transaction(lambda: resets.request_reset(form.email.data, ip=client_ip()))
        return render_template("auth/forgot.html", form=form, sent_to=form.email.data, **RESET_PAGE)
    return render_template("auth/forgot.html", form=form, **RESET_PAGE)


@bp.route("/reset-password/<token>", methods=["GET", "POST"])
def reset_password(token: str):
    """Choose a new password with a link from a reset email."""
    reset = resets.usable_reset(token)
    if reset is None:
        response = make_response(render_template("auth/reset.html", form=None, **RESET_PAGE), 404)
    else:
        form = ResetPasswordForm()
        status = 200
        if form.is_submitted():
            status = 400
            if form.validate():
                try:
                    in_one_transaction(
                        lambda: resets.reset_password(reset, form.new_password.data, ip=client_ip()),
                        done=_(
                            "Your password is changed and you are signed out everywhere. Sign in with it."
                        ),
                    )
                except DomainError as error:
                    show_error(form, error)
                    status = error.status
                else:
                    return redirect(url_for("auth.login"))
        response = make_response(render_template("auth/reset.html", form=form, **RESET_PAGE), status)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/admin/users/<int:user_id>/send-reset", methods=["POST"])
@requires("users.manage")
def send_password_reset(user_id: int):
    user = service.user_by_id(user_id)
    if user is None:
        abort(404)
    try:
        in_one_transaction(
            lambda: resets.send_reset(user, by=current_user, actor=current_actor()),
            done=_("A link to choose a new password is on its way to %(email)s.", email=user.email),
        )
    except DomainError as error:
        flash(error.message, "danger")
    return redirect(url_for("auth.edit_user", user_id=user_id))


SETUP_KEY = "two_factor_setup"  # the secret being set up, until a code proves the app has it
# What a user the tenant requires it of may still reach before setting it up.
BEFORE_SETUP = {"auth.two_factor", "auth.logout", "auth.choose_language", "auth.second_step", "static"}


@bp.before_app_request
def require_second_step_setup():
    """Managers and admins of a tenant that requires two-step sign-in set it up first."""
    if current_tenant() is None or request.endpoint in BEFORE_SETUP or not current_user.is_authenticated:
        return None
    if (request.endpoint or "").startswith("api.") or two_factor.enabled(current_user):
        return None
    if two_factor.required_for(current_user):
        flash(_("Your organisation requires two-step sign-in for your role. Set it up to go on."), "warning")
        return redirect(url_for("auth.two_factor"))
    return None


@bp.route("/account/two-factor", methods=["GET", "POST"], endpoint="two_factor")
@requires("account.edit")
def two_factor_page():
    """Set up, renew the recovery codes of, or turn off two-step sign-in."""
    user = current_user._get_current_object()
    setup_form, off_form = TwoFactorSetupForm(prefix="setup"), TwoFactorOffForm(prefix="off")
    action = request.form.get("action") if request.method == "POST" else None
    status = 200
    if action == "on" and not two_factor.enabled(user) and SETUP_KEY in session:
        status = 400
        if setup_form.validate():
            try:
                codes = in_one_transaction(
                    lambda: two_factor.turn_on(
                        user, session[SETUP_KEY], setup_form.code.data, actor=current_actor()
                    )
                )
            except DomainError as error:
                show_error(setup_form, error)
                status = error.status
            else:
                session.pop(SETUP_KEY, None)
                return _show_recovery_codes(codes, first=True)
    elif action == "codes" and two_factor.enabled(user):
        codes = in_one_transaction(lambda: two_factor.new_recovery_codes(user, actor=current_actor()))
        return _show_recovery_codes(codes, first=False)
    elif action == "off" and two_factor.enabled(user):
        status = 400
        if off_form.validate():
            if not check_password_hash(user.password_hash, off_form.password.data):
                off_form.password.errors = [_("The password is not correct.")]
                status = 403
            else:
                try:
                    in_one_transaction(
                        lambda: two_factor.turn_off(user, actor=current_actor()),
                        done=_("Two-step sign-in is off."),
                    )
                except DomainError as error:
                    flash(error.message, "danger")
                    status = error.status
                else:
                    return redirect(url_for("auth.account"))
    context = {"enabled": two_factor.enabled(user), "required": two_factor.required_for(user)}
    if not context["enabled"]:
        secret = session.setdefault(SETUP_KEY, two_factor.new_secret())
        context.update(
            secret=" ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
            qr=Markup(two_factor.qr_svg(two_factor.setup_uri(user, secret))),
        )
    else:
        context["codes_left"] = len(user.recovery_codes or [])
    response = make_response(
        render_template("auth/two_factor.html", setup_form=setup_form, off_form=off_form, **context), status
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _show_recovery_codes(codes: list[str], *, first: bool):
    response = make_response(render_template("auth/recovery_codes.html", codes=codes, first=first))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/admin/users/<int:user_id>/two-factor/off", methods=["POST"])
@requires("users.manage")
def turn_off_two_factor(user_id: int):
    """For a user who lost their phone and their recovery codes."""
    user = service.user_by_id(user_id)
    if user is None:
        abort(404)
    in_one_transaction(
        lambda: two_factor.turn_off(user, actor=current_actor(), by_admin=True),
        done=_(
            "Two-step sign-in is off for %(email)s. They set it up again at their next sign-in if required.",
            email=user.email,
        ),
    )
    return redirect(url_for("auth.edit_user", user_id=user_id))
