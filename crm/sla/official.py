"""The official calendars regulators count their days on, whatever hours a desk keeps.

A regulator's "working day" is the state's: in mainland China the days the State
Council's holiday notice makes working days (make-up Saturdays included), taken from
the ``chinesecalendar`` package; in the UK (England and Wales) and the US, Monday to
Friday less the public holidays the ``holidays`` package knows. Pure: no Flask, no
database.
"""

import functools
from dataclasses import dataclass
from datetime import date


class OfficialDataMissing(LookupError):
    """The installed package has no official calendar for that year."""

    def __init__(self, country: str, year: int, package: str):
        super().__init__(f"{package} has no official calendar of {country} for {year}")
        self.country, self.year, self.package = country, year, package


@dataclass(frozen=True)
class Country:
    code: str  # ISO 3166-1 alpha-2, as the holidays package takes it
    timezone: str  # where the regulator's "local midnight" is
    subdivision: str | None = None  # whose bank holidays: England and Wales for GB


COUNTRIES = {
    "CN": Country("CN", "Asia/Shanghai"),
    "GB": Country("GB", "Europe/London", "ENG"),  # England and Wales share their bank holidays
    "US": Country("US", "America/New_York"),  # federal holidays; the CFPB sits in Washington
}


def _chinese_calendar():
    import chinese_calendar  # imported when needed: most processes never count official days

    return chinese_calendar


@functools.lru_cache(maxsize=256)
def _public_holidays(country: str, subdivision: str | None, year: int):
    import holidays  # as above

    return holidays.country_holidays(country, subdiv=subdivision, years=year)


def package_of(country: str) -> str:
    """Which package (and version) the official calendar of ``country`` comes from."""
    if country == "CN":
        return f"chinesecalendar {_chinese_calendar().__version__}"
    import holidays

    return f"holidays {holidays.__version__}"


def is_working_day(country: str, day: date) -> bool:
    """Whether ``day`` is an official working day in ``country`` (OfficialDataMissing if
    the package does not know the year)."""
    if country == "CN":
        try:
            return _chinese_calendar().is_workday(day)
        except NotImplementedError:
            raise OfficialDataMissing(country, day.year, "chinesecalendar") from None
    place = COUNTRIES[country]
    return day.weekday() < 5 and day not in _public_holidays(place.code, place.subdivision, day.year)


def holiday_name(country: str, day: date, *, chinese: bool = False) -> str | None:
    """The public holiday ``day`` belongs to, if any (a weekend inside China's National
    Day week is "National Day"); None for an ordinary day or one the package lacks."""
    if country == "CN":
        calendar = _chinese_calendar()
        try:
            on_holiday, name = calendar.get_holiday_detail(day)
        except NotImplementedError:
            return None
        if not on_holiday or not name:
            return None
        return calendar.Holiday(name).chinese if chinese else name
    place = COUNTRIES[country]
    return _public_holidays(place.code, place.subdivision, day.year).get(day)


def is_makeup_day(country: str, day: date) -> bool:
    """A weekend date made a working day (China's 调休)."""
    try:
        return day.weekday() >= 5 and is_working_day(country, day)
    except OfficialDataMissing:
        return False
