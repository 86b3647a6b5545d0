"""Business-time arithmetic: worked examples a person can check, a minute-stepping
reference to compare against, and properties over generated calendars."""

import json
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from crm.sla.businesstime import (
    DAY_MINUTES,
    WEEKDAYS,
    CalendarError,
    CalendarSpec,
    NoWorkingTime,
    Timeline,
    china_year,
    format_intervals,
    format_weekly,
    ics_holidays,
    parse_hours,
    parse_intervals,
    timeline_for,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")
TIMEZONES = ("Asia/Shanghai", "America/New_York", "Europe/London")
OFFICE_HOURS = "mon-fri 09:00-12:00,13:30-18:00; sat-sun closed"
MINUTE = timedelta(minutes=1)

# Around DST changes in New York and London, China's National Day, and a quiet month.
ANCHORS = (
    datetime(2026, 3, 8, tzinfo=UTC),
    datetime(2026, 11, 1, tzinfo=UTC),
    datetime(2026, 3, 29, tzinfo=UTC),
    datetime(2026, 10, 25, tzinfo=UTC),
    datetime(2026, 10, 1, tzinfo=UTC),
    datetime(2026, 6, 15, tzinfo=UTC),
)

property_test = settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
reference_test = settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


def weekly(text: str) -> tuple:
    hours = parse_hours(text)
    return tuple(hours.get(day, ()) for day in range(7))


def office_calendar(timezone: str = "Asia/Shanghai", *, china_2026: bool = False) -> CalendarSpec:
    """Mon–Fri 09:00–12:00 and 13:30–18:00, optionally with China's 2026 holidays and make-up days."""
    week = weekly(OFFICE_HOURS)
    if not china_2026:
        return CalendarSpec(timezone, week)
    holidays, makeup_days = china_year(2026)
    return CalendarSpec(
        timezone,
        week,
        holidays=tuple(sorted(holidays.items())),
        workdays=tuple((day, week[0]) for day in makeup_days),
    )


# --- An independent reference: step minute by minute and read the wall clock ---------------


def open_by_wall_clock(spec: CalendarSpec, moment: datetime) -> bool:
    local = moment.astimezone(ZoneInfo(spec.timezone))
    second = local.hour * 3600 + local.minute * 60 + local.second
    return any(start * 60 <= second < end * 60 for start, end in spec.hours_on(local.date()))


def reference_add(spec: CalendarSpec, start: datetime, minutes: int) -> datetime:
    """The end of the minutes-th open minute from a minute-aligned start."""
    moment = start.astimezone(UTC)
    if minutes == 0:
        return moment
    counted = 0
    while True:
        if open_by_wall_clock(spec, moment):
            counted += 1
            if counted == minutes:
                return moment + MINUTE
        moment += MINUTE


def reference_minutes_between(spec: CalendarSpec, a: datetime, b: datetime) -> int:
    count, moment = 0, a.astimezone(UTC)
    while moment < b:
        count += open_by_wall_clock(spec, moment)
        moment += MINUTE
    return count


# --- Generated calendars ------------------------------------------------------------------


@st.composite
def day_hours(draw, step: int = 5) -> tuple:
    """0-3 separate windows on a grid of `step` minutes, lunch breaks included."""
    count = draw(st.integers(0, 3))
    points = sorted(
        draw(st.sets(st.integers(0, DAY_MINUTES // step), min_size=2 * count, max_size=2 * count))
    )
    return tuple((points[2 * i] * step, points[2 * i + 1] * step) for i in range(count))


@st.composite
def calendars(draw, timezones=TIMEZONES) -> tuple[CalendarSpec, datetime]:
    """A calendar with holidays and extra working days near an anchor, and the anchor."""
    anchor = draw(st.sampled_from(ANCHORS))
    week = [draw(day_hours()) for _ in range(7)]
    if not any(week):
        week[draw(st.integers(0, 6))] = ((540, 1020),)
    near = st.integers(-20, 40).map(lambda days: anchor.date() + timedelta(days=days))
    holidays = draw(st.dictionaries(near, st.sampled_from(["", "Founders' Day", "National Day"]), max_size=6))
    workdays = draw(st.dictionaries(near, day_hours().filter(bool), max_size=3))
    spec = CalendarSpec(
        draw(st.sampled_from(timezones)),
        tuple(week),
        holidays=tuple(sorted(holidays.items())),
        workdays=tuple(sorted(workdays.items())),
    )
    return spec, anchor


def instants_near(anchor: datetime):
    """Whole-second instants from 10 days before to 30 days after anchor, in any of our zones."""
    zones = st.sampled_from([UTC, SHANGHAI, NEW_YORK, LONDON])
    return st.tuples(st.integers(-10 * 86400, 30 * 86400), zones).map(
        lambda pair: (anchor + timedelta(seconds=pair[0])).astimezone(pair[1])
    )


# --- Worked examples ----------------------------------------------------------------------


def test_due_time_skips_the_national_day_week():
    # Wed 30 Sep 17:00 leaves 60 minutes that day (to 18:00). 1-7 Oct are National Day
    # (the weekend of 3-4 Oct inside it), so the other 60 run from Thu 8 Oct 09:00.
    timeline = Timeline(office_calendar(china_2026=True))
    start = datetime(2026, 9, 30, 17, 0, tzinfo=SHANGHAI)

    due = timeline.add(start, 120)

    assert due == datetime(2026, 10, 8, 10, 0, tzinfo=SHANGHAI)
    assert due.tzinfo is UTC
    assert timeline.minutes_between(start, due) == 120


def test_make_up_saturday_after_national_day_counts_as_working():
    # Fri 9 Oct 17:00 has 60 minutes left; Sat 10 Oct is a make-up working day.
    timeline = Timeline(office_calendar(china_2026=True))

    due = timeline.add(datetime(2026, 10, 9, 17, 0, tzinfo=SHANGHAI), 120)

    assert due == datetime(2026, 10, 10, 10, 0, tzinfo=SHANGHAI)


def test_lunch_break_is_not_counted():
    timeline = Timeline(office_calendar())
    start = datetime(2026, 6, 1, 11, 30, tzinfo=SHANGHAI)  # a Monday

    assert timeline.add(start, 60) == datetime(2026, 6, 1, 14, 0, tzinfo=SHANGHAI)
    assert timeline.minutes_between(start, datetime(2026, 6, 1, 14, 0, tzinfo=SHANGHAI)) == 60


def test_due_time_at_the_end_of_a_window_is_the_window_end_not_the_next_opening():
    timeline = Timeline(office_calendar())

    due = timeline.add(datetime(2026, 6, 1, 11, 30, tzinfo=SHANGHAI), 30)

    assert due == datetime(2026, 6, 1, 12, 0, tzinfo=SHANGHAI)


def test_a_start_in_closed_time_waits_for_the_next_opening():
    timeline = Timeline(office_calendar())
    saturday = datetime(2026, 6, 6, 10, 0, 17, tzinfo=SHANGHAI)

    assert timeline.add(saturday, 1) == datetime(2026, 6, 8, 9, 1, tzinfo=SHANGHAI)
    assert timeline.seconds_between(saturday, datetime(2026, 6, 8, 9, 0, 30, tzinfo=SHANGHAI)) == 30


def test_24x7_business_time_is_elapsed_time_across_a_dst_change():
    timeline = Timeline(CalendarSpec("Europe/London", weekly("24x7")))
    start = datetime(2026, 3, 28, 23, 30, tzinfo=LONDON)

    due = timeline.add(start, 120)

    assert due == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert due.astimezone(LONDON).hour == 2  # 01:00 GMT became 02:00 BST
    assert timeline.minutes_between(start, due) == 120


def test_spring_forward_window_is_one_hour_and_fall_back_window_three():
    spring = Timeline(CalendarSpec("America/New_York", weekly("mon-sun 01:30-03:30")))
    fall = Timeline(CalendarSpec("America/New_York", weekly("mon-sun 00:30-02:30")))

    (spring_window,) = spring.windows(date(2026, 3, 8), date(2026, 3, 8))
    (fall_window,) = fall.windows(date(2026, 11, 1), date(2026, 11, 1))

    assert spring_window == (datetime(2026, 3, 8, 6, 30, tzinfo=UTC), datetime(2026, 3, 8, 7, 30, tzinfo=UTC))
    assert fall_window == (datetime(2026, 11, 1, 4, 30, tzinfo=UTC), datetime(2026, 11, 1, 7, 30, tzinfo=UTC))


def test_windows_are_utc_and_merge_across_midnight():
    timeline = Timeline(CalendarSpec("Asia/Shanghai", weekly("mon-sun 00:00-24:00")))

    assert timeline.windows(date(2026, 6, 1), date(2026, 6, 2)) == [
        (datetime(2026, 5, 31, 16, 0, tzinfo=UTC), datetime(2026, 6, 2, 16, 0, tzinfo=UTC))
    ]


def test_adding_zero_gives_the_start_back_in_utc():
    start = datetime(2026, 6, 6, 10, 0, 17, tzinfo=SHANGHAI)

    result = Timeline(office_calendar()).add(start, 0)

    assert result == start
    assert result.tzinfo is UTC


@pytest.mark.parametrize(
    ("start", "minutes"),
    [(datetime(2026, 6, 1, tzinfo=UTC), -1), (datetime(2026, 6, 1), 10)],
    ids=["negative minutes", "naive start"],
)
def test_bad_arguments_are_refused(start, minutes):
    with pytest.raises(ValueError):
        Timeline(office_calendar()).add(start, minutes)


def test_a_calendar_that_never_opens_raises_no_working_time():
    timeline = Timeline(CalendarSpec("UTC", ((),) * 7))

    with pytest.raises(NoWorkingTime, match="no working time within 10 years"):
        timeline.add(datetime(2026, 1, 1, tzinfo=UTC), 1)


def test_is_open_follows_the_local_wall_clock():
    timeline = Timeline(office_calendar())

    assert timeline.is_open(datetime(2026, 6, 1, 9, 0, tzinfo=SHANGHAI))
    assert not timeline.is_open(datetime(2026, 6, 1, 12, 0, tzinfo=SHANGHAI))
    assert not timeline.is_open(datetime(2026, 6, 1, 8, 59, 59, tzinfo=SHANGHAI))


def test_holidays_between_lists_the_closed_holidays_for_an_explanation():
    spec = office_calendar(china_2026=True)

    listed = spec.holidays_between(date(2026, 9, 30), date(2026, 10, 2))

    assert listed == [(date(2026, 10, 1), "National Day"), (date(2026, 10, 2), "National Day")]


def test_an_extra_working_day_beats_a_holiday_on_the_same_date():
    spec = CalendarSpec(
        "UTC",
        weekly(OFFICE_HOURS),
        holidays=((date(2026, 6, 1), "Closed"),),
        workdays=((date(2026, 6, 1), ((600, 660),)),),
    )

    assert spec.hours_on(date(2026, 6, 1)) == ((600, 660),)
    assert spec.holidays_between(date(2026, 6, 1), date(2026, 6, 1)) == []


def test_timeline_for_shares_one_timeline_per_calendar():
    assert timeline_for(office_calendar()) is timeline_for(office_calendar())


# --- Parsing and formatting ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("09:00-12:00,13:30-18:00", ((540, 720), (810, 1080))),
        ("13:30-18:00, 09:00-12:00", ((540, 720), (810, 1080))),
        ("9:00-17:30", ((540, 1050),)),
        ("00:00-24:00", ((0, 1440),)),
        ("Closed", ()),
    ],
)
def test_parse_intervals_reads_hours(text, expected):
    assert parse_intervals(text) == expected


def test_format_intervals_writes_closed_for_no_hours():
    assert format_intervals(((540, 720), (810, 1440))) == "09:00-12:00,13:30-24:00"
    assert format_intervals(()) == "closed"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (OFFICE_HOURS, {day: ((540, 720), (810, 1080)) for day in range(5)} | {5: (), 6: ()}),
        ("Mon,Wed,Fri 09:00-17:00", {0: ((540, 1020),), 2: ((540, 1020),), 4: ((540, 1020),)}),
        ("sat 10:00-16:00\nSUN closed", {5: ((600, 960),), 6: ()}),
        ("monday-tuesday 08:00-09:00;", {0: ((480, 540),), 1: ((480, 540),)}),
        ("24x7", {day: ((0, 1440),) for day in range(7)}),
    ],
)
def test_parse_hours_reads_the_days_it_names(text, expected):
    assert parse_hours(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fry 09:00-17:00", "“fry” is not a day"),
        ("mon 25:00-26:00", "“25:00” is not a time of day"),
        ("mon 9am-5pm", "“9am” is not a time of day"),
        ("mon 18:00-09:00", "18:00-09:00 ends before it starts"),
        ("mon 09:00-12:00,11:00-13:00", "09:00-12:00 and 11:00-13:00 overlap"),
        ("mon-fri 09:00-17:00; fri 10:00-12:00", "fri already has hours"),
        ("mon,mon 09:00-17:00", "mon is named twice"),
        ("fri-mon 09:00-17:00", "“fri-mon” is not one"),
        ("mon-fri", "give days then hours"),
        ("mon 09:00-12:00; 24x7", "must be the whole"),
        ("", "No opening hours given"),
        ("  ", "No opening hours given"),
    ],
)
def test_bad_hours_are_refused_with_a_message_quoting_the_clause(text, message):
    with pytest.raises(CalendarError) as refused:
        parse_hours(text)

    assert message in str(refused.value)
    if text.strip() and "24x7" not in text:
        assert str(refused.value).startswith(f"“{text.split(';')[-1].strip()}”")


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "No hours given"), ("09:00", "not a time range"), ("24:00-24:00", "outside the day")],
)
def test_bad_intervals_are_refused(text, message):
    with pytest.raises(CalendarError, match=message):
        parse_intervals(text)


def test_format_weekly_groups_consecutive_equal_days():
    assert format_weekly(weekly(OFFICE_HOURS)) == "mon-fri 09:00-12:00,13:30-18:00; sat-sun closed"
    assert format_weekly(weekly("mon,wed 09:00-10:00; tue 09:00-11:00")) == (
        "mon 09:00-10:00; tue 09:00-11:00; wed 09:00-10:00; thu-sun closed"
    )
    assert format_weekly(weekly("24x7")) == "24x7"


@property_test
@given(st.lists(day_hours(step=1), min_size=7, max_size=7))
def test_format_weekly_reads_back_as_the_same_hours(week):
    assert parse_hours(format_weekly(week)) == dict(enumerate(week))


CHINA_OFFICE_JSON = {
    "timezone": "Asia/Shanghai",
    "weekly": {day: ["09:00-12:00", "13:30-18:00"] for day in WEEKDAYS[:5]} | {"sat": [], "sun": []},
    "holidays": {"2026-10-01": "National Day", "2026-10-02": ""},
    "workdays": {"2026-10-10": ["09:00-18:00"]},
}


def test_calendar_json_round_trips_exactly():
    spec = CalendarSpec.from_json(CHINA_OFFICE_JSON)

    assert spec.to_json() == CHINA_OFFICE_JSON
    assert spec.hours_on(date(2026, 10, 10)) == ((540, 1080),)
    assert spec.hours_on(date(2026, 10, 2)) == ()


@property_test
@given(calendars())
def test_any_calendar_survives_json(case):
    spec, _ = case

    assert CalendarSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"timezone": "Mars/Olympus"}, "“Mars/Olympus” is not a known time zone"),
        ({"weekly": {"mon": []}}, "'weekly' must give hours for each of mon"),
        ({"weekly": CHINA_OFFICE_JSON["weekly"] | {"mon": "09:00-12:00"}}, "weekly: mon: give a list"),
        ({"weekly": CHINA_OFFICE_JSON["weekly"] | {"tue": ["09:00-25:00"]}}, "weekly: tue: “25:00”"),
        ({"holidays": {"2026-13-01": "x"}}, "holidays: “2026-13-01” is not a date"),
        ({"workdays": {"2026-10-10": ["09:00-12:00", "11:00-13:00"]}}, "workdays: 2026-10-10: .* overlap"),
        ({"weekley": {}}, "Unknown calendar field 'weekley'"),
    ],
)
def test_bad_calendar_json_is_refused_naming_the_bad_part(change, message):
    with pytest.raises(CalendarError, match=message):
        CalendarSpec.from_json(CHINA_OFFICE_JSON | change)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"weekly": ((),) * 6}, "exactly 7 days"),
        ({"weekly": ("09:00-17:00",) * 7}, "weekly: mon: '09:00-17:00' is not a list"),
        ({"holidays": ((date(2026, 1, 1), "a"), (date(2026, 1, 1), "b"))}, "2026-01-01 is given twice"),
        ({"workdays": ((datetime(2026, 1, 4, tzinfo=UTC), ((540, 600),)),)}, "is not a date"),
    ],
)
def test_a_calendar_built_in_code_is_validated_too(fields, message):
    with pytest.raises(CalendarError, match=message):
        CalendarSpec(**({"timezone": "UTC", "weekly": ((),) * 7} | fields))


# --- Importers ----------------------------------------------------------------------------


def test_china_2026_has_national_day_and_weekend_make_up_days():
    holidays, makeup_days = china_year(2026)

    assert holidays[date(2026, 10, 1)] == "National Day"
    assert holidays[date(2026, 10, 3)] == "National Day"  # a Saturday inside the holiday
    assert holidays[date(2026, 2, 17)] == "Spring Festival"
    assert date(2026, 10, 10) in makeup_days
    assert makeup_days and all(day.weekday() >= 5 for day in makeup_days)
    assert not set(makeup_days) & set(holidays)
    in_chinese, same_makeup_days = china_year(2026, chinese_names=True)
    assert in_chinese[date(2026, 10, 1)] == "国庆节" and in_chinese[date(2026, 2, 17)] == "春节"
    assert in_chinese.keys() == holidays.keys() and same_makeup_days == makeup_days


@pytest.mark.parametrize("year", [1999, 2150])
def test_china_year_without_data_asks_for_an_upgrade(year):
    with pytest.raises(CalendarError, match=f"no data for {year}; upgrade chinesecalendar"):
        china_year(year)


HOLIDAYS_ICS = b"\r\n".join(
    [
        b"BEGIN:VCALENDAR",
        b"VERSION:2.0",
        b"PRODID:-//Ledgerdesk//Tests//EN",
        b"BEGIN:VEVENT",
        b"UID:founders@example.com",
        b"DTSTART;VALUE=DATE:20260601",
        b"SUMMARY:Founders' Day",
        b"END:VEVENT",
        b"BEGIN:VEVENT",
        b"UID:national@example.com",
        b"DTSTART;VALUE=DATE:20261001",
        b"DTEND;VALUE=DATE:20261004",
        b"SUMMARY:National Day",
        b"END:VEVENT",
        b"BEGIN:VEVENT",
        b"UID:retreat@example.com",
        b"DTSTART;VALUE=DATE:20261224",
        b"DURATION:P2D",
        b"SUMMARY:Company retreat",
        b"END:VEVENT",
        b"BEGIN:VEVENT",
        b"UID:meeting@example.com",
        b"DTSTART:20261002T090000Z",
        b"DTEND:20261002T100000Z",
        b"SUMMARY:Board meeting",
        b"END:VEVENT",
        b"END:VCALENDAR",
        b"",
    ]
)


def test_ics_all_day_events_become_holidays_and_timed_events_are_ignored():
    assert ics_holidays(HOLIDAYS_ICS) == {
        date(2026, 6, 1): "Founders' Day",
        date(2026, 10, 1): "National Day",
        date(2026, 10, 2): "National Day",
        date(2026, 10, 3): "National Day",
        date(2026, 12, 24): "Company retreat",
        date(2026, 12, 25): "Company retreat",
    }


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not a calendar at all",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        b"BEGIN:VEVENT\r\nSUMMARY:x\r\nEND:VEVENT\r\n",
        HOLIDAYS_ICS.replace(b"DTSTART;VALUE=DATE:20260601", b"DTSTART;VALUE=DATE:2026060x"),
        HOLIDAYS_ICS.replace(b"DTEND;VALUE=DATE:20261004", b"DTEND;VALUE=DATE:20250101"),
    ],
    ids=["empty", "text", "png", "no calendar", "bad date", "ends before start"],
)
def test_unreadable_ics_raises_calendar_error(data):
    with pytest.raises(CalendarError):
        ics_holidays(data)


# --- Properties over generated calendars ----------------------------------------------------


@property_test
@given(st.data(), calendars(), st.integers(0, 5000))
def test_adding_then_measuring_gives_the_minutes_back(data, case, minutes):
    spec, anchor = case
    start = data.draw(instants_near(anchor))
    timeline = Timeline(spec)

    assert timeline.minutes_between(start, timeline.add(start, minutes)) == minutes


@property_test
@given(st.data(), calendars(), st.integers(0, 3000), st.integers(0, 3000))
def test_later_targets_are_never_due_earlier(data, case, first, second):
    spec, anchor = case
    start = data.draw(instants_near(anchor))
    timeline = Timeline(spec)

    assert timeline.add(start, min(first, second)) <= timeline.add(start, max(first, second))


@property_test
@given(st.data(), calendars(), st.integers(0, 3000))
def test_later_starts_are_never_due_earlier(data, case, minutes):
    spec, anchor = case
    earlier, later = sorted((data.draw(instants_near(anchor)), data.draw(instants_near(anchor))))
    timeline = Timeline(spec)

    assert timeline.add(earlier, minutes) <= timeline.add(later, minutes)


@property_test
@given(st.data(), calendars(), st.integers(1, 3000))
def test_a_due_time_ends_an_open_second(data, case, minutes):
    spec, anchor = case
    start = data.draw(instants_near(anchor))

    due = Timeline(spec).add(start, minutes)

    assert open_by_wall_clock(spec, due - timedelta(seconds=1))


@property_test
@given(st.data(), calendars())
def test_seconds_between_adds_up_over_consecutive_spans(data, case):
    spec, anchor = case
    a, b, c = sorted(data.draw(instants_near(anchor)) for _ in range(3))
    timeline = Timeline(spec)

    assert timeline.seconds_between(a, b) + timeline.seconds_between(b, c) == timeline.seconds_between(a, c)
    assert timeline.seconds_between(c, a) == 0


@property_test
@given(st.data(), calendars())
def test_is_open_agrees_with_the_wall_clock(data, case):
    spec, anchor = case
    moment = data.draw(instants_near(anchor))

    assert Timeline(spec).is_open(moment) == open_by_wall_clock(spec, moment)


# --- Against the minute-stepping reference --------------------------------------------------


def business_days(spec: CalendarSpec, days: int) -> int:
    """About `days` business days of minutes, so the reference never has to walk far."""
    return days * sum(end - start for hours in spec.weekly for start, end in hours) // 7


@reference_test
@given(st.data(), calendars(timezones=("Asia/Shanghai", "America/New_York")))
def test_add_matches_the_minute_stepping_reference(data, case):
    spec, anchor = case
    start = anchor + MINUTE * data.draw(st.integers(-5 * DAY_MINUTES, 20 * DAY_MINUTES))
    minutes = data.draw(st.integers(0, max(business_days(spec, 3), 1)))

    due = Timeline(spec).add(start, minutes)

    assert due == reference_add(spec, start, minutes)


@reference_test
@given(st.data(), calendars(timezones=("Asia/Shanghai", "America/New_York")))
def test_minutes_between_matches_the_minute_stepping_reference(data, case):
    spec, anchor = case
    a = anchor + MINUTE * data.draw(st.integers(-5 * DAY_MINUTES, 20 * DAY_MINUTES))
    b = a + MINUTE * data.draw(st.integers(0, 6 * DAY_MINUTES))

    assert Timeline(spec).minutes_between(a, b) == reference_minutes_between(spec, a, b)


def reference_closing(spec: CalendarSpec, start: datetime, closings: int) -> tuple[datetime, int] | None:
    """The closings-th moment after start at which an open minute is followed by a closed
    one, and the open minutes from start up to it; None if a 24x7 stretch hides it."""
    moment, counted, was_open = start.astimezone(UTC), 0, False
    while moment < start + timedelta(days=60):
        now_open = open_by_wall_clock(spec, moment)
        if was_open and not now_open:
            closings -= 1
            if closings == 0:
                return moment, counted
        counted += now_open
        was_open = now_open
        moment += MINUTE
    return None


@reference_test
@given(st.data(), calendars(timezones=("Asia/Shanghai", "America/New_York")), st.integers(1, 3))
def test_filling_time_up_to_a_closing_is_due_at_the_closing(data, case, closings):
    spec, anchor = case
    start = anchor + MINUTE * data.draw(st.integers(-5 * DAY_MINUTES, 20 * DAY_MINUTES))
    found = reference_closing(spec, start, closings)
    assume(found is not None)
    closing, minutes = found

    assert Timeline(spec).add(start, minutes) == closing


# Windows that straddle the 01:00-03:00 hours New York skips in March and repeats in November.
DST_HOURS = (
    "mon-sun 01:30-03:30",
    "mon-sun 00:30-02:30",
    "mon-sun 01:00-03:00",
    "mon-sun 02:00-02:30",
    "mon-sun 01:15-01:45,09:00-17:00",
    "mon-sun 00:00-02:00,02:15-24:00",
)
US_DST_CHANGES = (datetime(2026, 3, 8, 7, 0, tzinfo=UTC), datetime(2026, 11, 1, 6, 0, tzinfo=UTC))


@reference_test
@given(
    st.sampled_from(DST_HOURS),
    st.sampled_from(US_DST_CHANGES),
    st.integers(-2 * DAY_MINUTES, 2 * DAY_MINUTES),
    st.integers(0, 400),
)
def test_new_york_dst_days_match_the_reference(hours, change, offset, minutes):
    spec = CalendarSpec("America/New_York", weekly(hours))
    start = change + MINUTE * offset
    timeline = Timeline(spec)

    due = timeline.add(start, minutes)

    assert due == reference_add(spec, start, minutes)
    assert timeline.minutes_between(start, due + MINUTE * 7) == reference_minutes_between(
        spec, start, due + MINUTE * 7
    )
