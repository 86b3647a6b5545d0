"""Which language and time zone a page is shown in."""

from babel import Locale
from flask import has_request_context, request, session
from flask_babel import get_locale
from flask_login import current_user

from tenants import current_tenant

SUPPORTED_LOCALES = ("en", "zh_CN")
LOCALE_NAMES = {"en": "English", "zh_CN": "简体中文"}
SESSION_KEY = "locale"


def select_locale() -> str:
    """The user's choice, else the tenant's default, else the browser's Accept-Language.

    Outside a request (CLI, jobs) there is no browser: English, the operator's language."""
    if not has_request_context():
        return "en"
    if getattr(current_user, "is_authenticated", False) and current_user.locale:
        return current_user.locale
    chosen = session.get(SESSION_KEY)
    if chosen in SUPPORTED_LOCALES:
        return chosen
    tenant = current_tenant()
    if tenant is not None and tenant.locale in SUPPORTED_LOCALES:
        return tenant.locale
    return request.accept_languages.best_match(SUPPORTED_LOCALES, default="en")


def page_locale() -> str:
    """The supported code (``en`` or ``zh_CN``) of the page being rendered; Babel itself
    reports zh_CN in its full form, zh_Hans_CN."""
    shown = get_locale()
    return next((code for code in SUPPORTED_LOCALES if Locale.parse(code) == shown), "en")


def select_timezone() -> str:
    tenant = current_tenant()
    return tenant.timezone if tenant else "UTC"
