"""What every template can use: the tenant, role checks, languages, local times."""

from datetime import datetime

from flask import Flask, has_request_context, request
from flask_babel import format_datetime

from crm.access import ROLE_LABELS, can
from crm.audit.service import ACTOR_KIND_LABELS
from crm.auth.forms import LogoutForm
from crm.i18n import LOCALE_NAMES, page_locale
from tenants import current_tenant


def local_time(moment: datetime | None, style: str = "medium") -> str:
    """An instant in the tenant's time zone and the page's language."""
    return format_datetime(moment, style) if moment else ""


def init_templating(app: Flask) -> None:
    app.jinja_env.filters["local_time"] = local_time

    @app.context_processor
    def shared_context() -> dict:
        locale = page_locale()
        return {
            "page_locale": locale,
            "html_lang": locale.replace("_", "-"),
            "tenant": current_tenant(),
            "can": can,
            "role_label": lambda role: ROLE_LABELS.get(role, role),
            "actor_kind_label": lambda kind: ACTOR_KIND_LABELS.get(kind, kind),
            "locale_names": LOCALE_NAMES,
            "csrf_only_form": LogoutForm,
            "current_path": request.full_path.rstrip("?") if has_request_context() else "",
        }
