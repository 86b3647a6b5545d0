"""Deadlines counted in whole days: "within N calendar days" or "within N working days"
of receipt, to local midnight at the end of the last day.

A regulator's days are its own: they run in the jurisdiction's time zone, a working day
is an official one (``crm.sla.official``), not a day the desk happens to open, and where
the law says so a period whose last day is not a working day ends on the next working
day (China's Civil Code, art. 203). A tenant's own profile counts on its calendar, as
before. Pure: no Flask, no database.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from crm.sla import official
from crm.sla.businesstime import CalendarSpec
from crm.sla.models import Unit

MAX_DAYS_SEARCHED = 3660


@dataclass(frozen=True)
class DayDeadline:
    due_at: datetime  # local midnight at the end of last_day, in UTC
    received: date  # the local date of receipt; day 1 is the day after
    last_day: date
    moved_from: date | None  # the period's own last day, when it was not a working day
    timezone: str
    # Years the official calendar lacked, counted Monday to Friday with the dates the
    # rules' calendar lists as holidays or make-up working days.
    missing_years: tuple[int, ...] = ()


def end_of_day(day: date, timezone: str) -> datetime:
    """Local midnight at the end of ``day``: a deadline "within N days" runs to then."""
    return datetime.combine(day + timedelta(days=1), time(0), ZoneInfo(timezone)).astimezone(UTC)


def _listed_day(spec: CalendarSpec | None, day: date) -> bool:
    """Monday to Friday, unless the calendar lists the date as a holiday or a working day."""
    if spec is not None:
        if any(listed == day for listed, _hours in spec.workdays):
            return True
        if spec.holidays_between(day, day):
            return False
    return day.weekday() < 5


def working_day_test(
    country: str | None, spec: CalendarSpec | None, missing: set[int]
) -> Callable[[date], bool]:
    """Whether a date is a working day: the country's official one if given (falling back
    to ``_listed_day`` for a year the package lacks, noted in ``missing``), else a date
    with hours on the calendar."""
    if country is None:
        if spec is None:
            return lambda day: day.weekday() < 5
        return lambda day: bool(spec.hours_on(day))

    def official_working_day(day: date) -> bool:
        try:
            return official.is_working_day(country, day)
        except official.OfficialDataMissing:
            missing.add(day.year)
            return _listed_day(spec, day)

    return official_working_day


def nth_working_day_after(is_working: Callable[[date], bool], day: date, count: int) -> date:
    """The ``count``-th working date after ``day``."""
    found = 0
    for offset in range(1, MAX_DAYS_SEARCHED):
        candidate = day + timedelta(days=offset)
        if is_working(candidate):
            found += 1
            if found == count:
                return candidate
    raise ValueError("the calendar has no working days")


def next_working_day(is_working: Callable[[date], bool], day: date) -> date:
    """``day`` itself if it is a working day, else the first working day after it."""
    for offset in range(MAX_DAYS_SEARCHED):
        candidate = day + timedelta(days=offset)
        if is_working(candidate):
            return candidate
    raise ValueError("the calendar has no working days")


def day_deadline(
    started_at: datetime,
    days: int,
    unit: Unit | str,
    *,
    timezone: str,
    country: str | None = None,
    spec: CalendarSpec | None = None,
    roll_forward: bool = False,
) -> DayDeadline:
    """When a period of ``days`` calendar or working days from ``started_at`` ends.

    Days are local dates in ``timezone``; the day of receipt is not counted. Working
    days are ``country``'s official ones, or else the dates with hours on ``spec``.
    With ``roll_forward``, a last day that is not a working day gives way to the next
    working day."""
    received = started_at.astimezone(ZoneInfo(timezone)).date()
    missing: set[int] = set()
    is_working = working_day_test(country, spec, missing)
    if unit == Unit.BUSINESS_DAYS:
        last_day = nth_working_day_after(is_working, received, days)
    else:
        last_day = received + timedelta(days=days)
    moved_from = None
    if roll_forward:
        moved = next_working_day(is_working, last_day)
        if moved != last_day:
            moved_from, last_day = last_day, moved
    return DayDeadline(
        end_of_day(last_day, timezone), received, last_day, moved_from, timezone, tuple(sorted(missing))
    )
