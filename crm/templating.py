"""What every template can use: the tenant, role checks, languages, local times."""

from datetime import datetime

from flask import Flask, request
from flask_babel import format_datetime, get_locale

from crm.access import ROLE_LABELS, can
from crm.auth.forms import LogoutForm
from crm.i18n import LOCALE_NAMES
from tenants import current_tenant


def local_time(moment: datetime | None, style: str = "medium") -> str:
    """An instant in the tenant's time zone and the page's language."""
    return format_datetime(moment, style) if moment else ""


def init_templating(app: Flask) -> None:
    app.jinja_env.filters["local_time"] = local_time

    @app.context_processor
    def shared_context() -> dict:
        locale = str(get_locale())
        return {
            "page_locale": locale,
            "html_lang": locale.replace("_", "-"),
            "tenant": current_tenant(),
            "can": can,
            "role_label": lambda role: ROLE_LABELS.get(role, role),
            "locale_names": LOCALE_NAMES,
            "csrf_only_form": LogoutForm,
            "current_path": request.full_path.rstrip("?"),
        }
