"""What every template can use: the tenant, role checks, languages, local times."""

import functools
import re
from datetime import datetime, timedelta

from babel import Locale
from babel.dates import DateTimePattern, get_timezone_name, match_skeleton, parse_pattern
from flask import Flask, current_app, has_request_context, request
from flask_babel import format_datetime, get_locale, get_timezone
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from markupsafe import Markup, escape

from crm.access import ROLE_LABELS, can, permissions_of
from crm.audit.service import ACTOR_KIND_LABELS
from crm.auth.forms import LogoutForm
from crm.i18n import LOCALE_NAMES, page_locale
from tenants import current_tenant

_URL = re.compile(r"https?://[^\s<>\"'()（）]+")


def link_own_urls(text: str | None) -> Markup:
    """``text`` escaped, with links to our own public pages (a policy version named in a
    final response) made clickable; any other address stays text, so nothing a message
    carries becomes a link on our page."""
    base = current_app.config["PUBLIC_BASE_URL"].rstrip("/") + "/"
    escaped = str(escape(text or ""))

    def link(match: re.Match) -> str:
        url = match.group(0).rstrip(".,;:!?。，；：")
        rest = match.group(0)[len(url) :]
        if not url.startswith(base):
            return match.group(0)
        return f'<a href="{url}" rel="noopener">{url}</a>{rest}'

    return Markup(_URL.sub(link, escaped))


def _day_and_time(local: datetime, *, with_year: bool) -> str:
    """The one way times read on our pages: "Thu, Dec 3, 2026 16:31" / "2026年12月3日周四 16:31"."""
    return f"{_day(local, 'yMMMEd' if with_year else 'MMMEd')} {local:%H:%M}"


def _day(local: datetime, skeleton: str) -> str:
    """``local``'s day as the page's language writes ``skeleton`` (Babel's format_skeleton)."""
    locale = get_locale()
    return _skeleton_pattern(skeleton, str(locale)).apply(local, locale)


@functools.lru_cache(maxsize=64)
def _skeleton_pattern(skeleton: str, locale: str) -> DateTimePattern:
    # Babel matches the skeleton against the locale's patterns on every call; a page
    # of tickets formats a hundred times.
    patterns = Locale.parse(locale).datetime_skeletons
    if skeleton not in patterns:
        skeleton = match_skeleton(skeleton, patterns) or skeleton
    return parse_pattern(patterns[skeleton])


def local_time(moment: datetime | None, style: str = "medium") -> str:
    """An instant in the tenant's time zone and the page's language; "full" and "long"
    spell the date out, every other style reads as ``_day_and_time``."""
    if moment is None:
        return ""
    if style in ("full", "long"):
        return format_datetime(moment, style)
    return _day_and_time(moment.astimezone(get_timezone()), with_year=True)


def iso_local_time(text: str | None) -> str:
    """An ISO-8601 instant kept as text (a thread entry's details), as ``local_time``."""
    try:
        return local_time(datetime.fromisoformat(text)) if text else ""
    except ValueError:
        return text or ""


def local_time_zoned(moment: datetime | None) -> str:
    """A local time that says which zone it is in, for promises made to customers."""
    if moment is None:
        return ""
    return f"{local_time(moment)} ({time_zone_label()})"


def weekday_time(moment: datetime | None) -> str:
    """A deadline as people say it: "Tue, Oct 6 14:30" / "10月6日周二 14:30" (the year
    only when it is not this one)."""
    if moment is None:
        return ""
    local = moment.astimezone(get_timezone())
    this_year = local.year == datetime.now(local.tzinfo).year
    if (local.hour, local.minute, local.second) == (0, 0, 0):
        # A deadline "within N days" ends at midnight: say the day it ends.
        day = local - timedelta(days=1)
        skeleton = "MMMEd" if this_year else "yMMMEd"
        return str(_l("end of %(day)s", day=_day(day, skeleton)))
    return _day_and_time(local, with_year=not this_year)


def time_zone_label() -> str:
    """The zone staff pages' times are in, as people name it: "China Time", "中国时间"."""
    return _zone_label(str(get_timezone()), str(get_locale()))


@functools.lru_cache(maxsize=1024)
def _zone_label(zone: str, locale: str) -> str:
    # Babel looks through its locale data each time; a receipt names the zone per deadline.
    return get_timezone_name(zone, locale=locale)


def init_templating(app: Flask) -> None:
    app.jinja_env.filters["local_time"] = local_time
    app.jinja_env.filters["link_own_urls"] = link_own_urls
    app.jinja_env.filters["weekday_time"] = weekday_time
    app.jinja_env.filters["local_time_zoned"] = local_time_zoned
    app.jinja_env.filters["iso_local_time"] = iso_local_time
    app.jinja_env.globals["time_zone_label"] = time_zone_label

    @app.context_processor
    def shared_context() -> dict:
        locale = page_locale()
        return {
            "page_locale": locale,
            "html_lang": locale.replace("_", "-"),
            "tenant": current_tenant(),
            "can": can,
            "permitted": permissions_of(current_user) if has_request_context() else frozenset(),
            "role_label": lambda role: ROLE_LABELS.get(role, role),
            "actor_kind_label": lambda kind: ACTOR_KIND_LABELS.get(kind, kind),
            "locale_names": LOCALE_NAMES,
            "csrf_only_form": LogoutForm,
            "current_path": request.full_path.rstrip("?") if has_request_context() else "",
        }
