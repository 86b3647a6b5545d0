"""Changing a tenant's business calendars. Each change is a new calendar version; clocks
already running keep the version they started with."""

import dataclasses
import re
from datetime import date

from flask_babel import lazy_gettext as _l

from crm.audit.service import Actor
from crm.errors import DomainError
from crm.sla import versions
from crm.sla.businesstime import (
    CalendarError,
    CalendarSpec,
    china_year,
    country_year,
    ics_holidays,
    parse_hours,
    parse_intervals,
)
from crm.sla.models import ConfigKind, ConfigVersion
from crm.sla.versions import calendar_error
from tenants import current_tenant

NAME_RE = re.compile(r"^[\w][\w .'&()-]{0,58}[\w.)]$|^\w$")
MAX_ICS_BYTES = 1024 * 1024


def spec_of(name: str) -> CalendarSpec:
    return versions.calendar_spec(versions.calendar(name))


def save_spec(
    name: str, spec: CalendarSpec, *, actor: Actor, user_id: int | None = None
) -> ConfigVersion | None:
    """Store ``spec`` as the calendar's next version (None: nothing changed)."""
    return versions.save(ConfigKind.CALENDAR, name, spec.to_json(), actor=actor, user_id=user_id)


def create(name: str, timezone: str, *, actor: Actor, user_id: int | None = None) -> ConfigVersion:
    """A new calendar, Monday to Friday 09:00–18:00 until its hours are set."""
    name = (name or "").strip()
    if not NAME_RE.match(name):
        raise DomainError(
            _l("A calendar name is 1–60 letters, digits, spaces or simple punctuation."), "name"
        )
    if name in versions.calendar_names():
        raise DomainError(_l("There is already a calendar named %(name)s.", name=name), "name")
    try:
        spec = dataclasses.replace(
            spec_of(versions.DEFAULT_KEYS[ConfigKind.CALENDAR]), timezone=timezone, holidays=(), workdays=()
        )
    except CalendarError as error:
        raise calendar_error(error, "timezone") from None
    return save_spec(name, spec, actor=actor, user_id=user_id)


def _changed(name: str, field: str, **changes) -> CalendarSpec:
    try:
        return dataclasses.replace(spec_of(name), **changes)
    except CalendarError as error:
        raise calendar_error(error, field) from None


def set_hours(name: str, text: str, *, actor: Actor, user_id: int | None = None) -> ConfigVersion | None:
    """Set the hours of the days ``text`` names ("mon-fri 09:00-12:00,13:30-18:00",
    "sat 10:00-16:00", "sun closed", "24x7"); other days keep theirs."""
    try:
        hours = parse_hours(text)
    except CalendarError as error:
        raise calendar_error(error, "hours") from None
    weekly = list(spec_of(name).weekly)
    for weekday, intervals in hours.items():
        weekly[weekday] = intervals
    return save_spec(name, _changed(name, "hours", weekly=tuple(weekly)), actor=actor, user_id=user_id)


def _merged(spec: CalendarSpec, holidays: dict[date, str], workdays: dict) -> dict:
    """The spec's dates with these added: a date is a holiday or a working day, never both."""
    merged_holidays = {**dict(spec.holidays), **holidays}
    merged_workdays = {**dict(spec.workdays), **workdays}
    for day in holidays:
        merged_workdays.pop(day, None)
    for day in workdays:
        merged_holidays.pop(day, None)
    return {"holidays": tuple(merged_holidays.items()), "workdays": tuple(merged_workdays.items())}


def add_dates(
    name: str,
    *,
    holidays: dict[date, str] | None = None,
    workdays: list[date] = (),
    hours: str | None = None,
    actor: Actor,
    user_id: int | None = None,
) -> ConfigVersion | None:
    """Close the ``holidays``; make the ``workdays`` working days with ``hours``, or else
    the calendar's Monday hours. One new version for all of it."""
    spec = spec_of(name)
    try:
        intervals = parse_intervals(hours) if hours else spec.weekly[0]
    except CalendarError as error:
        raise calendar_error(error, "hours") from None
    if workdays and not intervals:
        raise DomainError(_l("Give the working day's hours, e.g. 09:00-18:00."), "hours")
    changes = _merged(spec, holidays or {}, dict.fromkeys(workdays, intervals))
    return save_spec(name, _changed(name, "holidays", **changes), actor=actor, user_id=user_id)


def import_china(
    name: str, year: int, *, actor: Actor, user_id: int | None = None, language: str = "en"
) -> ConfigVersion | None:
    """Mainland China's public holidays and make-up working days for ``year``, named in
    the tenant's language (the desk's shared one, whoever imports them), else in
    ``language`` (the importer's)."""
    language = current_tenant().locale or language
    try:
        holidays, workdays = china_year(year, chinese_names=language.startswith("zh"))
    except CalendarError as error:
        raise calendar_error(error, "year") from None
    return add_dates(name, holidays=holidays, workdays=workdays, actor=actor, user_id=user_id)


def import_public_holidays(
    name: str,
    country: str,
    year: int,
    *,
    subdivision: str | None = None,
    actor: Actor,
    user_id: int | None = None,
    language: str = "en",
) -> ConfigVersion | None:
    """A country's public holidays for ``year`` from the ``holidays`` package (England
    and Wales's bank holidays for GB unless another region is named). Mainland China's
    come from ``chinesecalendar`` with its make-up working days, as ``import_china``."""
    if country.strip().upper() == "CN":
        return import_china(name, year, actor=actor, user_id=user_id, language=language)
    try:
        holidays = country_year(country, year, subdivision)
    except CalendarError as error:
        raise calendar_error(error, "country") from None
    return add_dates(name, holidays=holidays, actor=actor, user_id=user_id)


def import_ics(name: str, data: bytes, *, actor: Actor, user_id: int | None = None) -> ConfigVersion | None:
    if len(data) > MAX_ICS_BYTES:
        raise DomainError(_l("The calendar file is larger than 1 MB."), "ics")
    try:
        holidays = ics_holidays(data)
    except CalendarError as error:
        raise calendar_error(error, "ics") from None
    if not holidays:
        raise DomainError(_l("The file holds no all-day events to import as holidays."), "ics")
    return add_dates(name, holidays=holidays, actor=actor, user_id=user_id)
