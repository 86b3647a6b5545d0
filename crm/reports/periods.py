"""Report periods: whole days in the tenant's time zone, as [start, end) instants."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask_babel import lazy_gettext as _l

from crm.errors import DomainError

PRESETS = ("this_week", "last_week", "this_month", "last_month", "this_quarter", "last_quarter")
PRESET_LABELS = {
    "this_week": _l("This week"),
    "last_week": _l("Last week"),
    "this_month": _l("This month"),
    "last_month": _l("Last month"),
    "this_quarter": _l("This quarter"),
    "last_quarter": _l("Last quarter"),
}
# A report over more than this many days is a different job (an export).
MAX_DAYS = 3 * 366


@dataclass(frozen=True)
class Period:
    first_day: date
    last_day: date  # inclusive
    timezone: str

    @property
    def start(self) -> datetime:
        return _midnight(self.first_day, self.timezone)

    @property
    def end(self) -> datetime:
        return _midnight(self.last_day + timedelta(days=1), self.timezone)

    def weeks(self) -> list[date]:
        """The Mondays of the weeks the period touches."""
        monday = self.first_day - timedelta(days=self.first_day.weekday())
        weeks = []
        while monday <= self.last_day:
            weeks.append(monday)
            monday += timedelta(days=7)
        return weeks

    def week_of(self, moment: datetime) -> date:
        local = moment.astimezone(ZoneInfo(self.timezone)).date()
        return local - timedelta(days=local.weekday())


def _midnight(day: date, timezone: str) -> datetime:
    return datetime.combine(day, time(0), ZoneInfo(timezone)).astimezone(UTC)


def _quarter_start(day: date) -> date:
    return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


def preset(name: str, today: date, timezone: str) -> Period:
    """One of ``PRESETS`` around ``today`` (the tenant's local date)."""
    if name == "this_week":
        first = today - timedelta(days=today.weekday())
        return Period(first, first + timedelta(days=6), timezone)
    if name == "last_week":
        first = today - timedelta(days=today.weekday() + 7)
        return Period(first, first + timedelta(days=6), timezone)
    if name == "this_month":
        first = today.replace(day=1)
        return Period(first, (first + timedelta(days=32)).replace(day=1) - timedelta(days=1), timezone)
    if name == "last_month":
        last = today.replace(day=1) - timedelta(days=1)
        return Period(last.replace(day=1), last, timezone)
    if name == "this_quarter":
        first = _quarter_start(today)
        return Period(first, _quarter_start(first + timedelta(days=95)) - timedelta(days=1), timezone)
    if name == "last_quarter":
        last = _quarter_start(today) - timedelta(days=1)
        return Period(_quarter_start(last), last, timezone)
    raise DomainError(_l("Choose a period from the list."), "period")


def between(first: date | None, last: date | None, timezone: str) -> Period:
    """A from–to period, both days included."""
    if first is None or last is None:
        raise DomainError(_l("Give both dates, from and to."), "first_day")
    if last < first:
        raise DomainError(_l("The period cannot end before it starts."), "last_day")
    if (last - first).days >= MAX_DAYS:
        raise DomainError(_l("A report covers at most three years."), "last_day")
    return Period(first, last, timezone)


def local_today(timezone: str, now: datetime) -> date:
    return now.astimezone(ZoneInfo(timezone)).date()
