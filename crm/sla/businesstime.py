"""Business-time arithmetic for SLA clocks: working hours, holidays and exact due times.

Pure Python with no Flask or database: a CalendarSpec says when a desk is open, and a
Timeline adds and measures business time on it exactly, DST transition days included.
"""

import bisect
import functools
import itertools
import operator
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask_babel import lazy_gettext as _l

Interval = tuple[int, int]  # minutes after local midnight, 0 <= start < end <= 1440 (1440 = 24:00)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

DAY_MINUTES = 1440
FIRST_YEAR, LAST_YEAR = 1971, 2199

_FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_NUMBERS = {name: index for names in (WEEKDAYS, _FULL_DAY_NAMES) for index, name in enumerate(names)}
_TIME_RE = re.compile(r"(\d{1,2}):(\d{2})")
_CLAUSE_RE = re.compile(r"(?P<days>.+?)\s+(?P<hours>(?:\d.*|closed))", re.IGNORECASE)
_JSON_KEYS = ("timezone", "weekly", "holidays", "workdays")

_US = 1_000_000  # Timeline works in integer microseconds since the Unix epoch
_DAY_S = 86_400
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = _EPOCH.date().toordinal()
_MIN_S = (date(FIRST_YEAR, 1, 1).toordinal() - _EPOCH_ORDINAL) * _DAY_S
_MAX_S = (date(LAST_YEAR + 1, 1, 1).toordinal() - _EPOCH_ORDINAL) * _DAY_S
_CHUNK_S = 366 * _DAY_S
_SEARCH_LIMIT_US = 3653 * _DAY_S * _US  # ten years
# Offsets are sampled this far apart and changes bisected to the second; no real zone
# changes its offset twice within six hours.
_OFFSET_PROBE_S = 6 * 3600
_ICS_MAX_EVENT_DAYS = 366


class CalendarError(ValueError):
    """Bad calendar input; str(error) is a clear English message for a person."""


class NoWorkingTime(CalendarError):
    """The calendar has no working time within 10 years of the instant."""


# --- Hours as text ----------------------------------------------------------------------


def _not_a_time(text: str):
    return _l("“%(text)s” is not a time of day (use HH:MM, from 00:00 to 24:00).", text=text.strip())


def _minute_of_day(text: str) -> int:
    match = _TIME_RE.fullmatch(text.strip())
    if match is None:
        raise CalendarError(_not_a_time(text))
    hours, minutes = int(match[1]), int(match[2])
    if minutes > 59 or hours > 24 or (hours == 24 and minutes):
        raise CalendarError(_not_a_time(text))
    return hours * 60 + minutes


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _parse_interval(text: str) -> Interval:
    start, dash, end = text.strip().partition("-")
    if not dash:
        raise CalendarError(
            _l("“%(text)s” is not a time range (write it like 09:00-17:30).", text=text.strip())
        )
    return _minute_of_day(start), _minute_of_day(end)


def _listed(value: object, what: str) -> Iterable:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise CalendarError(f"{what}: {value!r} is not a list")
    return value


def _checked_intervals(intervals: Iterable, where: str) -> tuple[Interval, ...]:
    """Sorted, validated intervals; where names them in error messages."""
    checked = []
    for interval in _listed(intervals, where):
        try:
            start, end = interval
        except (TypeError, ValueError):
            raise CalendarError(f"{where}: {interval!r} is not a (start, end) pair of minutes") from None
        if not all(isinstance(minute, int) and not isinstance(minute, bool) for minute in (start, end)):
            raise CalendarError(f"{where}: {interval!r} is not a (start, end) pair of minutes")
        if not 0 <= start < DAY_MINUTES or not 0 < end <= DAY_MINUTES:
            raise CalendarError(
                _l(
                    "%(where)s: %(range)s is outside the day (00:00 to 24:00).",
                    where=where,
                    range=f"{_clock(start)}-{_clock(end)}",
                )
            )
        if end <= start:
            raise CalendarError(
                _l(
                    "%(where)s: %(range)s ends before it starts "
                    "(hours cannot run past midnight; split them at 24:00).",
                    where=where,
                    range=f"{_clock(start)}-{_clock(end)}",
                )
            )
        checked.append((start, end))
    checked.sort()
    for (start, end), (next_start, next_end) in itertools.pairwise(checked):
        if next_start < end:
            raise CalendarError(
                _l(
                    "%(where)s: %(first)s and %(second)s overlap.",
                    where=where,
                    first=f"{_clock(start)}-{_clock(end)}",
                    second=f"{_clock(next_start)}-{_clock(next_end)}",
                )
            )
    return tuple(checked)


def parse_intervals(text: str, where: str | None = None) -> tuple[Interval, ...]:
    """Hours such as "09:00-12:00,13:30-18:00" (or "closed") as sorted intervals; errors
    about them begin with ``where`` (the text itself, quoted, unless given)."""
    if text.strip().lower() == "closed":
        return ()
    if not text.strip():
        raise CalendarError(_l("No hours given: write them like 09:00-17:30, or “closed”."))
    where = where or f"“{text.strip()}”"
    return _checked_intervals((_parse_interval(part) for part in text.split(",")), where)


def format_intervals(intervals: Iterable[Interval]) -> str:
    """The inverse of parse_intervals: "09:00-12:00,13:30-18:00", or "closed" for no hours."""
    return ",".join(f"{_clock(start)}-{_clock(end)}" for start, end in intervals) or "closed"


def _parse_days(text: str, clause: str) -> list[int]:
    days: list[int] = []
    for item in re.sub(r"\s+", "", text.lower()).split(","):
        first, dash, last = item.partition("-")
        if first not in _DAY_NUMBERS or (dash and last not in _DAY_NUMBERS):
            bad = first if first not in _DAY_NUMBERS else last
            raise CalendarError(
                _l(
                    "“%(clause)s”: “%(bad)s” is not a day (use %(days)s).",
                    clause=clause,
                    bad=bad,
                    days=", ".join(WEEKDAYS),
                )
            )
        start = _DAY_NUMBERS[first]
        end = _DAY_NUMBERS[last] if dash else start
        if end < start:
            raise CalendarError(
                _l(
                    "“%(clause)s”: a range of days runs forward from mon to sun, so “%(item)s” is not one.",
                    clause=clause,
                    item=item,
                )
            )
        for day in range(start, end + 1):
            if day in days:
                raise CalendarError(
                    _l("“%(clause)s”: %(day)s is named twice.", clause=clause, day=WEEKDAYS[day])
                )
            days.append(day)
    return days


def parse_hours(text: str) -> dict[int, tuple[Interval, ...]]:
    """Weekly hours as written by a person, for the days the text names only.

    Clauses are separated by ";" or new lines: "mon-fri 09:00-12:00,13:30-18:00; sat
    10:00-16:00; sun closed". "24x7" on its own opens every day all day.
    """
    if not text.strip():
        raise CalendarError(
            _l("No opening hours given: write them like “mon-fri 09:00-17:00; sat-sun closed”.")
        )
    if text.strip().lower() == "24x7":
        return {day: ((0, DAY_MINUTES),) for day in range(7)}
    hours: dict[int, tuple[Interval, ...]] = {}
    for clause in (part.strip() for part in re.split(r"[;\n]", text)):
        if not clause:
            continue
        if clause.lower() == "24x7":
            raise CalendarError(_l("“24x7” must be the whole of the hours, not one clause among others."))
        match = _CLAUSE_RE.fullmatch(clause)
        if match is None:
            raise CalendarError(
                _l(
                    "“%(clause)s”: give days then hours, like “mon-fri 09:00-17:00” or “sun closed”.",
                    clause=clause,
                )
            )
        days = _parse_days(match["days"], clause)
        try:
            intervals = parse_intervals(match["hours"], f"“{clause}”")
        except CalendarError as error:
            if str(error).startswith(f"“{clause}”"):
                raise
            raise CalendarError(_l("“%(clause)s”: %(error)s", clause=clause, error=error)) from None
        for day in days:
            if day in hours:
                raise CalendarError(
                    _l(
                        "“%(clause)s”: %(day)s already has hours in an earlier clause.",
                        clause=clause,
                        day=WEEKDAYS[day],
                    )
                )
            hours[day] = intervals
    return hours


def format_weekly(weekly: Iterable[Iterable[Interval]]) -> str:
    """Weekly hours as text that parse_hours reads back, grouping consecutive equal days."""
    days = [tuple(day) for day in weekly]
    if all(day == ((0, DAY_MINUTES),) for day in days):
        return "24x7"
    clauses = []
    first = 0
    while first < len(days):
        last = first
        while last + 1 < len(days) and days[last + 1] == days[first]:
            last += 1
        names = WEEKDAYS[first] if first == last else f"{WEEKDAYS[first]}-{WEEKDAYS[last]}"
        clauses.append(f"{names} {format_intervals(days[first])}")
        first = last + 1
    return "; ".join(clauses)


# --- The calendar -----------------------------------------------------------------------


def _zone(name: str) -> ZoneInfo:
    if not isinstance(name, str) or not name.strip():
        raise CalendarError(_l("The time zone is missing (give an IANA name such as Asia/Shanghai)."))
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise CalendarError(
            _l("“%(name)s” is not a known time zone (give an IANA name such as Asia/Shanghai).", name=name)
        ) from None


def _checked_dates(entries: Iterable, what: str) -> tuple:
    """(date, value) pairs sorted by date, refusing datetimes, dates out of range and repeats."""
    checked = []
    for entry in _listed(entries, what):
        try:
            day, value = entry
        except (TypeError, ValueError):
            raise CalendarError(f"{what}: {entry!r} is not a (date, value) pair") from None
        if not isinstance(day, date) or isinstance(day, datetime):
            raise CalendarError(f"{what}: {day!r} is not a date")
        if not FIRST_YEAR <= day.year <= LAST_YEAR:
            raise CalendarError(
                _l(
                    "%(what)s: %(day)s is outside the years %(first)s-%(last)s.",
                    what=what,
                    day=day.isoformat(),
                    first=FIRST_YEAR,
                    last=LAST_YEAR,
                )
            )
        checked.append((day, value))
    checked.sort(key=operator.itemgetter(0))
    for (day, _), (next_day, _) in itertools.pairwise(checked):
        if day == next_day:
            raise CalendarError(_l("%(what)s: %(day)s is given twice.", what=what, day=day.isoformat()))
    return tuple(checked)


def _json_date(text: object, what: str) -> date:
    try:
        if not isinstance(text, str):
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise CalendarError(
            _l("%(what)s: “%(text)s” is not a date (use YYYY-MM-DD).", what=what, text=text)
        ) from None


def _json_intervals(value: object, where: str) -> tuple[Interval, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise CalendarError(f'{where}: give a list of ranges such as ["09:00-12:00", "13:30-18:00"]')
    try:
        return _checked_intervals((_parse_interval(item) for item in value), where)
    except CalendarError as error:
        message = str(error)
        raise CalendarError(message if message.startswith(where) else f"{where}: {message}") from None


@dataclass(frozen=True)
class CalendarSpec:
    """When a desk is open: weekly hours in one time zone, holidays, and extra working days.

    For a local date, an extra working day's hours win, then a holiday closes the day,
    else the weekday's hours apply. The constructor sorts and validates its input.
    """

    timezone: str
    weekly: tuple[tuple[Interval, ...], ...]
    holidays: tuple[tuple[date, str], ...] = ()
    workdays: tuple[tuple[date, tuple[Interval, ...]], ...] = ()

    def __post_init__(self) -> None:
        _zone(self.timezone)
        weekly = tuple(_listed(self.weekly, "weekly"))
        if len(weekly) != 7:
            raise CalendarError(f"Weekly hours need exactly 7 days, Monday first; got {len(weekly)}")
        holidays = _checked_dates(self.holidays, "holidays")
        for day, name in holidays:
            if not isinstance(name, str):
                raise CalendarError(f"holidays: the name for {day.isoformat()} is not text")
        workdays = _checked_dates(self.workdays, "workdays")
        # Normalised to sorted tuples so that equal calendars are equal and hashable.
        object.__setattr__(
            self,
            "weekly",
            tuple(
                _checked_intervals(hours, f"weekly: {name}")
                for name, hours in zip(WEEKDAYS, weekly, strict=True)
            ),
        )
        object.__setattr__(self, "holidays", holidays)
        object.__setattr__(
            self,
            "workdays",
            tuple(
                (day, _checked_intervals(hours, f"workdays: {day.isoformat()}")) for day, hours in workdays
            ),
        )

    @functools.cached_property
    def _holiday_names(self) -> dict[date, str]:
        return dict(self.holidays)

    @functools.cached_property
    def _holiday_dates(self) -> list[date]:
        return [day for day, _ in self.holidays]

    @functools.cached_property
    def _workday_hours(self) -> dict[date, tuple[Interval, ...]]:
        return dict(self.workdays)

    def hours_on(self, day: date) -> tuple[Interval, ...]:
        """The local wall-clock hours of that date, after precedence."""
        hours = self._workday_hours.get(day)
        if hours is not None:
            return hours
        if day in self._holiday_names:
            return ()
        return self.weekly[day.weekday()]

    def holidays_between(self, first: date, last: date) -> list[tuple[date, str]]:
        """Holidays from first to last inclusive that close the desk (not those made working days)."""
        dates = self._holiday_dates
        low, high = bisect.bisect_left(dates, first), bisect.bisect_right(dates, last)
        return [entry for entry in self.holidays[low:high] if entry[0] not in self._workday_hours]

    def to_json(self) -> dict:
        return {
            "timezone": self.timezone,
            "weekly": {
                name: [format_intervals((interval,)) for interval in hours]
                for name, hours in zip(WEEKDAYS, self.weekly, strict=True)
            },
            "holidays": {day.isoformat(): name for day, name in self.holidays},
            "workdays": {
                day.isoformat(): [format_intervals((interval,)) for interval in hours]
                for day, hours in self.workdays
            },
        }

    @classmethod
    def from_json(cls, data: dict) -> "CalendarSpec":
        """A calendar from to_json's shape, validated, with errors naming the bad part."""
        if not isinstance(data, dict):
            raise CalendarError("A calendar must be a JSON object")
        unknown = sorted(set(data) - set(_JSON_KEYS), key=str)
        if unknown:
            raise CalendarError(f"Unknown calendar field {unknown[0]!r} (expected {', '.join(_JSON_KEYS)})")
        if "weekly" not in data:
            raise CalendarError("The calendar has no 'weekly' hours")
        weekly = data["weekly"]
        if not isinstance(weekly, dict) or set(weekly) != set(WEEKDAYS):
            raise CalendarError(
                f"'weekly' must give hours for each of {', '.join(WEEKDAYS)} and no other key"
            )
        holidays = data.get("holidays", {})
        workdays = data.get("workdays", {})
        for field, value in (("holidays", holidays), ("workdays", workdays)):
            if not isinstance(value, dict):
                raise CalendarError(f"'{field}' must map YYYY-MM-DD dates to values")
        for day, name in holidays.items():
            if not isinstance(name, str):
                raise CalendarError(f"holidays: the name for {day} must be text")
        return cls(
            timezone=data.get("timezone"),
            weekly=tuple(_json_intervals(weekly[name], f"weekly: {name}") for name in WEEKDAYS),
            holidays=tuple((_json_date(day, "holidays"), name) for day, name in holidays.items()),
            workdays=tuple(
                (_json_date(day, "workdays"), _json_intervals(hours, f"workdays: {day}"))
                for day, hours in workdays.items()
            ),
        )


# --- Exact windows in UTC ---------------------------------------------------------------


def _offset_at(zone: ZoneInfo, second: int) -> int:
    return int(datetime.fromtimestamp(second, zone).utcoffset().total_seconds())


def _offset_runs(zone: ZoneInfo, first: int, end: int) -> list[tuple[int, int, int]]:
    """[first, end) in epoch seconds split into (start, end, utc offset) runs of one offset."""
    runs = []
    run_start, offset = first, _offset_at(zone, first)
    probe = first
    while probe < end - 1:
        ahead = min(probe + _OFFSET_PROBE_S, end - 1)
        ahead_offset = _offset_at(zone, ahead)
        while ahead_offset != offset:
            low, high = probe, ahead  # the offset is still `offset` at low, no longer at high
            while high - low > 1:
                middle = (low + high) // 2
                if _offset_at(zone, middle) == offset:
                    low = middle
                else:
                    high = middle
            runs.append((run_start, high, offset))
            run_start, offset, probe = high, _offset_at(zone, high), high
        probe = ahead
    runs.append((run_start, end, offset))
    return runs


def _open_pieces(
    hours_on: Callable[[date], tuple[Interval, ...]],
    runs: list[tuple[int, int, int]],
    keep: Callable[[date], bool],
) -> list[tuple[int, int]]:
    """The sorted, merged UTC seconds at which the wall clock is inside the hours of a kept date.

    Within a run of one offset, wall time is UTC plus that offset, so each date's
    interval maps to one UTC range, cut to the run; a DST day is served by two runs.
    """
    pieces = []
    for run_start, run_end, offset in runs:
        for day_number in range((run_start + offset) // _DAY_S, (run_end - 1 + offset) // _DAY_S + 1):
            day = date.fromordinal(day_number + _EPOCH_ORDINAL)
            if not keep(day):
                continue
            midnight = day_number * _DAY_S - offset
            for start, end in hours_on(day):
                low, high = max(midnight + start * 60, run_start), min(midnight + end * 60, run_end)
                if low < high:
                    pieces.append((low, high))
    pieces.sort()
    merged: list[tuple[int, int]] = []
    for start, end in pieces:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


@dataclass(frozen=True, slots=True)
class _Span:
    """The working windows within [low, high), in epoch microseconds, with running totals.

    before[i] and through[i] are the business microseconds counted up to the start and
    the end of window i, from an arbitrary origin that stays fixed as the span grows.
    """

    low: int
    high: int
    starts: list[int]
    ends: list[int]
    before: list[int]
    through: list[int]
    total_low: int
    total_high: int

    def business_at(self, moment: int) -> int:
        index = bisect.bisect_right(self.starts, moment) - 1
        if index < 0:
            return self.total_low
        return self.before[index] + min(moment, self.ends[index]) - self.starts[index]


def _span_of(pieces: list[tuple[int, int]], low: int, high: int, origin: int) -> _Span:
    starts, ends, before, through = [], [], [], []
    total = origin
    for start, end in pieces:
        starts.append(start * _US)
        ends.append(end * _US)
        before.append(total)
        total += (end - start) * _US
        through.append(total)
    return _Span(low * _US, high * _US, starts, ends, before, through, origin, total)


def _joined(left: _Span, right: _Span) -> _Span:
    """Two adjacent spans as one, merging a window cut at the seam."""
    skip = 1 if left.ends and right.starts and left.ends[-1] == right.starts[0] else 0
    ends, through = left.ends + right.ends[skip:], left.through + right.through[skip:]
    if skip:
        ends[len(left.ends) - 1] = right.ends[0]
        through[len(left.through) - 1] = right.through[0]
    return _Span(
        left.low,
        right.high,
        left.starts + right.starts[skip:],
        ends,
        left.before + right.before[skip:],
        through,
        left.total_low,
        right.total_high,
    )


def _to_us(moment: datetime) -> int:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment!r} has no time zone; business time needs an aware datetime")
    delta = moment - _EPOCH
    return (delta.days * _DAY_S + delta.seconds) * _US + delta.microseconds


def _from_us(moment: int) -> datetime:
    return _EPOCH + timedelta(microseconds=moment)


class Timeline:
    """Exact business-time arithmetic on one CalendarSpec.

    Instants are timezone-aware datetimes (any zone); results are aware UTC datetimes.
    Windows are built lazily a year at a time, so each call costs a binary search
    however far it reaches. Safe to share between threads.
    """

    def __init__(self, spec: CalendarSpec):
        self.spec = spec
        self._zone = ZoneInfo(spec.timezone)
        self._lock = threading.Lock()
        self._span: _Span | None = None

    def _pieces(self, low: int, high: int) -> list[tuple[int, int]]:
        runs = _offset_runs(self._zone, low, high)
        return _open_pieces(self.spec.hours_on, runs, lambda day: True)

    def _later(self, span: _Span) -> _Span:
        low = span.high // _US
        high = min(low + _CHUNK_S, _MAX_S)
        return _joined(span, _span_of(self._pieces(low, high), low, high, span.total_high))

    def _covering(self, moment: int) -> _Span:
        """A span holding moment, grown a year at a time as needed."""
        span = self._span
        if span is not None and span.low <= moment < span.high:
            return span
        if not _MIN_S * _US <= moment < _MAX_S * _US:
            raise ValueError(
                f"{_from_us(moment).isoformat()} is outside the years {FIRST_YEAR}-{LAST_YEAR} "
                "that business time covers"
            )
        with self._lock:
            span = self._span
            if span is None:
                low = _MIN_S + (moment // _US - _MIN_S) // _CHUNK_S * _CHUNK_S
                high = min(low + _CHUNK_S, _MAX_S)
                span = _span_of(self._pieces(low, high), low, high, 0)
            while moment < span.low:
                high = span.low // _US
                low = max(high - _CHUNK_S, _MIN_S)
                pieces = self._pieces(low, high)
                length = sum(end - start for start, end in pieces) * _US
                span = _joined(_span_of(pieces, low, high, span.total_low - length), span)
            while moment >= span.high:
                span = self._later(span)
            self._span = span
            return span

    def _reaching(self, total: int, since: int) -> _Span:
        """A span whose windows hold `total` business microseconds, searching forward from since."""
        with self._lock:
            span = self._span
            while span.total_high < total:
                last_open = max(since, span.ends[-1] if span.ends else since)
                if span.high >= _MAX_S * _US:
                    raise NoWorkingTime(f"Business time cannot run past the end of {LAST_YEAR}")
                if span.high - last_open > _SEARCH_LIMIT_US:
                    raise NoWorkingTime(
                        "The calendar has no working time within 10 years after "
                        f"{_from_us(last_open).isoformat()}"
                    )
                span = self._later(span)
            self._span = span
            return span

    def add(self, start: datetime, minutes: int) -> datetime:
        """The due time `minutes` business minutes after start, in UTC."""
        return self.add_seconds(start, operator.index(minutes) * 60)

    def add_seconds(self, start: datetime, seconds: int) -> datetime:
        """The instant `seconds` business seconds after start, in UTC.

        For a positive amount this is the end of the last business second, so it may be
        a window's end but never lies in closed time; 0 gives start back unchanged.
        """
        seconds = operator.index(seconds)
        if seconds < 0:
            raise ValueError(f"Business time cannot be negative (got {seconds} seconds)")
        moment = _to_us(start)
        if seconds == 0:
            return start.astimezone(UTC)
        span = self._covering(moment)
        total = span.business_at(moment) + seconds * _US
        if span.total_high < total:
            span = self._reaching(total, moment)
        index = bisect.bisect_left(span.through, total)
        return _from_us(span.starts[index] + total - span.before[index])

    def seconds_between(self, a: datetime, b: datetime) -> int:
        """Whole business seconds in [a, b); 0 when b is not after a."""
        first, last = _to_us(a), _to_us(b)
        if last <= first:
            return 0
        self._covering(first)
        span = self._covering(last)
        return (span.business_at(last) - span.business_at(first)) // _US

    def minutes_between(self, a: datetime, b: datetime) -> int:
        """Whole business minutes in [a, b)."""
        return self.seconds_between(a, b) // 60

    def is_open(self, t: datetime) -> bool:
        """Whether t lies inside a working window [start, end)."""
        moment = _to_us(t)
        span = self._covering(moment)
        index = bisect.bisect_right(span.starts, moment) - 1
        return index >= 0 and moment < span.ends[index]

    def windows(self, first: date, last: date) -> list[tuple[datetime, datetime]]:
        """The UTC working windows of the local dates first to last inclusive, adjacent ones merged."""
        if last < first:
            return []
        low = max((first.toordinal() - _EPOCH_ORDINAL - 2) * _DAY_S, _MIN_S)
        high = min((last.toordinal() - _EPOCH_ORDINAL + 3) * _DAY_S, _MAX_S)
        if high <= low:
            return []
        runs = _offset_runs(self._zone, low, high)
        pieces = _open_pieces(self.spec.hours_on, runs, lambda day: first <= day <= last)
        return [(_from_us(start * _US), _from_us(end * _US)) for start, end in pieces]


@functools.lru_cache(maxsize=128)
def timeline_for(spec: CalendarSpec) -> Timeline:
    """The shared Timeline of a calendar, so its windows are built once."""
    return Timeline(spec)


# --- Importers --------------------------------------------------------------------------


def china_year(year: int, *, chinese_names: bool = False) -> tuple[dict[date, str], list[date]]:
    """Mainland China's statutory holidays of a year and its make-up working days.

    Holidays are every date chinese_calendar lists as a holiday, weekends inside a
    holiday block included, named in English ("National Day") or Chinese ("国庆节");
    make-up days are the weekend dates that are working days.
    """
    import chinese_calendar  # here, not at the top: every process imports this module, few import holidays

    try:
        chinese_calendar.is_workday(date(year, 1, 1))
        chinese_calendar.is_workday(date(year, 12, 31))
    except NotImplementedError:
        raise CalendarError(
            _l(
                "chinesecalendar %(version)s has no data for %(year)s; upgrade chinesecalendar, or add "
                "the year's holidays by hand or from an iCalendar file.",
                version=chinese_calendar.__version__,
                year=year,
            )
        ) from None
    holidays: dict[date, str] = {}
    makeup_days: list[date] = []
    day = date(year, 1, 1)
    while day.year == year:
        on_holiday, name = chinese_calendar.get_holiday_detail(day)
        if on_holiday and name:
            holidays[day] = chinese_calendar.Holiday(name).chinese if chinese_names else name
        elif not on_holiday and day.weekday() >= 5:
            makeup_days.append(day)
        day += timedelta(days=1)
    return holidays, makeup_days


# The subdivision whose holidays a country's import takes when none is named: a UK
# regulator's business days are England and Wales's (the FCA and the PSRs say "bank
# holiday in England and Wales" where it matters).
DEFAULT_SUBDIVISIONS = {"GB": "ENG"}


def country_year(country: str, year: int, subdivision: str | None = None) -> dict[date, str]:
    """A country's public holidays of a year, from the ``holidays`` package, by date, in
    English. ``country`` is an ISO 3166 code (GB, US, DE...); ``subdivision`` a region
    of it (ENG, SCT, NIR, WLS for GB), England and Wales by default for GB."""
    import holidays  # as chinese_calendar above: only an import needs it

    country = country.strip().upper()
    subdivision = (subdivision or DEFAULT_SUBDIVISIONS.get(country) or "").strip().upper() or None
    try:
        calendar = holidays.country_holidays(country, subdiv=subdivision, years=year, language="en_US")
    except NotImplementedError:
        known = holidays.list_supported_countries()
        if country not in known:
            raise CalendarError(
                _l(
                    "“%(country)s” is not a country the holidays package knows (give an ISO code "
                    "such as GB, US or DE).",
                    country=country,
                )
            ) from None
        raise CalendarError(
            _l(
                "%(country)s has no region “%(subdivision)s” (known: %(known)s).",
                country=country,
                subdivision=subdivision,
                known=", ".join(known[country]) or "-",
            )
        ) from None
    if not calendar.start_year <= year <= calendar.end_year:
        raise CalendarError(
            _l(
                "The holidays package %(version)s knows %(country)s from %(first)s to %(last)s, "
                "not %(year)s.",
                version=holidays.__version__,
                country=country,
                first=calendar.start_year,
                last=calendar.end_year,
                year=year,
            )
        )
    found = {day: str(name) for day, name in sorted(calendar.items()) if day.year == year}
    if not found:
        raise CalendarError(
            _l(
                "The holidays package lists no public holidays of %(country)s in %(year)s.",
                country=country,
                year=year,
            )
        )
    return found


def ics_holidays(data: bytes) -> dict[date, str]:
    """The all-day events of an iCalendar file as holidays, by date.

    DTEND is exclusive (one day when absent) and a multi-day event covers each of its
    dates; timed events are skipped, and recurrence rules are not expanded. When two
    events fall on one date their names are joined.
    """
    import icalendar  # as chinese_calendar above: only an import needs it

    try:
        calendar = icalendar.Calendar.from_ical(data)
    except Exception as error:  # the parser raises many types on bad input; callers get one
        raise CalendarError(
            _l("This is not an iCalendar file that can be read (%(error)s).", error=error)
        ) from None
    if getattr(calendar, "name", None) != "VCALENDAR":
        raise CalendarError(_l("This is not an iCalendar file: it has no VCALENDAR."))
    holidays: dict[date, str] = {}
    for event in calendar.walk("VEVENT"):
        summary = str(event.get("SUMMARY", "")).strip()
        title = f"“{summary}”" if summary else _l("(untitled)")
        try:
            start = event["DTSTART"].dt
            if "DTEND" in event:
                end = event["DTEND"].dt
            elif "DURATION" in event:
                end = start + event["DURATION"].dt
            else:
                end = start + timedelta(days=1)
        except (KeyError, ValueError, TypeError, AttributeError):
            raise CalendarError(
                _l("The event %(title)s has no readable start or end date.", title=title)
            ) from None
        if isinstance(start, datetime) or not isinstance(start, date):
            continue
        if isinstance(end, datetime) or not isinstance(end, date) or end <= start:
            raise CalendarError(_l("The all-day event %(title)s does not end on a later date.", title=title))
        if (end - start).days > _ICS_MAX_EVENT_DAYS:
            raise CalendarError(
                _l("The event %(title)s lasts more than a year; is it a holiday?", title=title)
            )
        day = start
        while day < end:
            names = holidays.get(day)
            if names is None or not names:
                holidays[day] = summary
            elif summary and summary not in names.split(" / "):
                holidays[day] = f"{names} / {summary}"
            day += timedelta(days=1)
    return holidays
