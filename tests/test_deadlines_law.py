"""Regulatory deadlines as the regulator means them: the jurisdiction's time zone and
official working days, whatever the desk's hours; a Chinese period ending on a statutory
holiday ends on the next working day (Civil Code art. 203); UK business days without
England and Wales's bank holidays; the UK payment-services profile; the import of any
country's public holidays. Expected dates are worked out by hand in the comments, from
the State Council's 2026 holiday notice and the UK's published bank holidays."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from crm.errors import DomainError
from crm.sla import calendars, clocks, versions
from crm.sla.businesstime import CalendarSpec
from crm.sla.deadlines import day_deadline
from crm.sla.models import ClockState, ConfigKind, Metric, Unit
from crm.sla.rules import BUILTIN_PROFILES, DEFAULT_CALENDAR
from crm.tickets.models import Channel, Kind, Priority, Ticket
from tests.conftest import acting_for, login
from tests.test_sla import OPERATOR, clocks_by_metric, events, open_by_staff, travel
from tests.test_sla_pages import deadlines_card, ticket_page

SHANGHAI = ZoneInfo("Asia/Shanghai")
LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")


def assigning(*pairs: tuple[str, str, str]) -> dict:
    return {"assignments": [{"kind": k, "channel": c, "profile": p} for k, c, p in pairs]}


def desk(app, make_tenant, make_user, *, timezone: str, hours: str, deadlines: dict, **tenant_fields):
    tenant = make_tenant(timezone=timezone, **tenant_fields)
    agent = make_user(tenant, "agent")
    with acting_for(app, tenant) as session:
        calendars.set_hours(DEFAULT_CALENDAR, hours, actor=OPERATOR)
        versions.save(ConfigKind.DEADLINES, "default", deadlines, actor=OPERATOR)
        session.commit()
    return tenant, agent


def complaint_at(app, tenant, agent, moment: datetime, kind="complaint", channel="phone") -> tuple[int, int]:
    """A complaint logged by the agent at ``moment``: (id, number)."""
    with travel(moment), acting_for(app, tenant) as session:
        ticket = open_by_staff(session, agent, kind, channel)
        session.commit()
        return ticket.id, ticket.number


def regulatory(app, tenant, ticket_id: int, metric: Metric = Metric.REGULATORY_FINAL):
    with acting_for(app, tenant):
        return clocks_by_metric(ticket_id)[metric]


# --- China: a period ending on a holiday, and the state's working days ---------------------


def test_a_telecom_complaint_due_on_national_day_is_due_on_the_next_working_day(
    app, client, make_tenant, make_user
):
    tenant, agent = desk(
        app,
        make_tenant,
        make_user,
        timezone="Asia/Shanghai",
        hours="mon-fri 09:00-18:00",
        deadlines=assigning(("complaint", "*", "cn-telecom")),
    )
    ticket_id, number = complaint_at(app, tenant, agent, datetime(2026, 9, 16, 10, tzinfo=SHANGHAI))
    clock = regulatory(app, tenant, ticket_id)
    # 15 days after 16 Sep is 1 Oct; 1-7 Oct are National Day, so the period ends with
    # Thursday 8 Oct, at midnight Shanghai time.
    assert clock.due_at == datetime(2026, 10, 9, tzinfo=SHANGHAI)
    with travel(datetime(2026, 9, 16, 11, tzinfo=SHANGHAI)):
        login(client, tenant, agent)
        english = deadlines_card(ticket_page(client, tenant, number))
        chinese = deadlines_card(
            client.get(f"/t/{tenant.slug}/tickets/{number}", headers={"Accept-Language": "zh-CN"}).text
        )
    assert "15 calendar days after the day of receipt (Sep 16, Asia/Shanghai time)" in english
    assert "moved from Oct 1 (National Day) to Oct 8, the next working day" in english
    assert "由 10月1日（国庆节）顺延至 10月8日（下一个工作日）" in chinese
    assert "自受理次日起 15 个自然日（受理日 9月16日，按 Asia/Shanghai 时间）" in chinese


def test_a_deadline_on_an_ordinary_day_does_not_move(app, make_tenant, make_user):
    tenant, agent = desk(
        app,
        make_tenant,
        make_user,
        timezone="Asia/Shanghai",
        hours="24x7",
        deadlines=assigning(("complaint", "*", "cn-telecom")),
    )
    # 23:30 UTC on 29 Sep is 07:30 on the 30th in Shanghai: received on the 30th; 15 days
    # later is Thursday 15 Oct, a working day.
    ticket_id, _number = complaint_at(app, tenant, agent, datetime(2026, 9, 29, 23, 30, tzinfo=UTC))
    assert regulatory(app, tenant, ticket_id).due_at == datetime(2026, 10, 16, tzinfo=SHANGHAI)


@pytest.mark.parametrize(
    "hours, extra",
    [
        # Open Monday to Saturday: its Saturdays are not the state's working days.
        ("mon-sat 09:00-18:00", {}),
        # Closed on Friday 9 Oct, and not working the make-up Saturday 10 Oct: both are
        # the state's working days all the same.
        ("mon-fri 09:00-18:00", {"holidays": {date(2026, 10, 9): "Staff outing"}}),
    ],
)
def test_12315_working_days_are_the_states_whatever_the_desk_keeps(app, make_tenant, make_user, hours, extra):
    tenant, agent = desk(
        app,
        make_tenant,
        make_user,
        timezone="Asia/Shanghai",
        hours=hours,
        deadlines=assigning(("*", "regulator_referral", "cn-12315-odr")),
    )
    if extra:
        with acting_for(app, tenant) as session:
            calendars.add_dates(DEFAULT_CALENDAR, holidays=extra["holidays"], actor=OPERATOR)
            session.commit()
    ticket_id, _number = complaint_at(
        app, tenant, agent, datetime(2026, 9, 30, 10, tzinfo=SHANGHAI), "refund", "regulator_referral"
    )
    # After 30 Sep: 1-7 Oct National Day; 8, 9, Sat 10 (make-up), 12-16, 19, 20 make ten.
    assert regulatory(app, tenant, ticket_id).due_at == datetime(2026, 10, 21, tzinfo=SHANGHAI)


def test_a_12321_referral_is_answered_in_15_of_the_states_working_days(app, make_tenant, make_user):
    tenant, agent = desk(
        app,
        make_tenant,
        make_user,
        timezone="Asia/Shanghai",
        hours="mon-sat 09:00-18:00",
        deadlines=assigning(("complaint", "regulator_referral", "cn-12321")),
    )
    ticket_id, _number = complaint_at(
        app, tenant, agent, datetime(2026, 9, 30, 10, tzinfo=SHANGHAI), "complaint", "regulator_referral"
    )
    # After 30 Sep: 1-7 Oct National Day; 8, 9, Sat 10 (make-up), 12-16, 19-23, 26, 27 make fifteen.
    clock = regulatory(app, tenant, ticket_id)
    assert (clock.rule, clock.unit, clock.target) == ("cn-12321", "business_days", 15)
    assert clock.due_at == datetime(2026, 10, 28, tzinfo=SHANGHAI)


def test_a_year_chinesecalendar_lacks_counts_weekdays_less_the_calendars_holidays():
    spec = CalendarSpec(
        timezone="Asia/Shanghai",
        weekly=(((540, 1080),),) * 5 + ((),) * 2,
        holidays=((date(2027, 1, 1), "New Year"),),
    )
    received = datetime(2026, 12, 24, 10, tzinfo=SHANGHAI)
    deadline = day_deadline(
        received, 10, Unit.BUSINESS_DAYS, timezone="Asia/Shanghai", country="CN", spec=spec, roll_forward=True
    )
    # 25, 28-31 Dec from the official calendar; then 2027, which chinesecalendar 1.11
    # lacks: 1 Jan is the calendar's holiday, so 4-8 Jan make ten.
    assert deadline.last_day == date(2027, 1, 8)
    assert deadline.missing_years == (2027,)


# --- the UK --------------------------------------------------------------------------------


def test_the_fca_marker_counts_uk_business_days_on_a_24x7_london_desk(app, make_tenant, make_user):
    tenant, agent = desk(
        app,
        make_tenant,
        make_user,
        timezone="Europe/London",
        hours="24x7",
        deadlines=assigning(("complaint", "*", "uk-fca")),
        currency="GBP",
    )
    # Thursday 17 Sep: Fri, Mon, Tue; the close of the third business day is the end of
    # Tuesday, not Sunday as the desk's seven-day week would have it.
    thursday, _number = complaint_at(app, tenant, agent, datetime(2026, 9, 17, 10, tzinfo=LONDON))
    summary = regulatory(app, tenant, thursday, Metric.REGULATORY_SUMMARY)
    assert summary.due_at == datetime(2026, 9, 23, tzinfo=LONDON)
    # Christmas Eve: 25 Dec and Boxing Day (observed, Monday 28) are bank holidays.
    christmas, _number = complaint_at(app, tenant, agent, datetime(2026, 12, 24, 10, tzinfo=LONDON))
    summary = regulatory(app, tenant, christmas, Metric.REGULATORY_SUMMARY)
    assert summary.due_at == datetime(2027, 1, 1, tzinfo=LONDON)  # the end of Thursday 31 Dec


def test_payment_services_complaints_get_15_and_at_most_35_business_days(app, client, make_tenant, make_user):
    tenant, agent = desk(
        app,
        make_tenant,
        make_user,
        timezone="Europe/London",
        hours="mon-fri 09:00-17:00",
        deadlines=assigning(("complaint", "*", "uk-psd")),
        currency="GBP",
    )
    received = datetime(2026, 12, 1, 11, tzinfo=LONDON)  # a Tuesday
    ticket_id, number = complaint_at(app, tenant, agent, received)
    with acting_for(app, tenant):
        by_metric = clocks_by_metric(ticket_id)
        final, latest = by_metric[Metric.REGULATORY_FINAL], by_metric[Metric.REGULATORY_FINAL_LATEST]
        assert (final.rule, final.unit, final.target) == ("uk-psd", "business_days", 15)
        assert (latest.target, latest.alerts) == (35, True)
    # 2-4, 7-11, 14-18, 21-22 Dec are fifteen (25, 28 Dec and 1 Jan are bank holidays).
    assert final.due_at == datetime(2026, 12, 23, tzinfo=LONDON)
    # Then 23, 24, 29, 30, 31 Dec, 4-8, 11-15 and 18-22 Jan: thirty-five.
    assert latest.due_at == datetime(2027, 1, 23, tzinfo=LONDON)
    with travel(received + timedelta(hours=1)):
        login(client, tenant, agent)
        card = deadlines_card(ticket_page(client, tenant, number))
        chinese = deadlines_card(
            client.get(f"/t/{tenant.slug}/tickets/{number}", headers={"Accept-Language": "zh-CN"}).text
        )
    assert "15 working days after the day of receipt (Dec 1, Europe/London time), on the official" in card
    assert "监管最终答复期限（特殊情况）" in chinese and "12月25日：法定节假日 Christmas Day" in chinese
    assert "按英国（英格兰和威尔士）法定工作日计算" in chinese
    assert "Regulatory final answer, exceptional cases" in card
    assert "Source: Payment Services Regulations 2017 reg. 101 and FCA Handbook DISP 1.6.2A" in card
    assert "Dec 25: public holiday Christmas Day" in card


def test_a_tenants_own_profile_may_count_a_countrys_official_days_and_move_off_holidays(
    app, make_tenant, make_user
):
    own = {
        "code": "internal-10",
        "name": "Our promise: 10 days",
        "days": 10,
        "unit": "calendar_days",
        "country": "CN",
        "roll_forward": True,
    }
    plain = {**own, "code": "internal-10-plain", "country": None, "roll_forward": False}
    tenant, agent = desk(
        app,
        make_tenant,
        make_user,
        timezone="Asia/Shanghai",
        hours="mon-sat 09:00-18:00",
        deadlines={
            **assigning(("complaint", "*", "internal-10"), ("inquiry", "*", "internal-10-plain")),
            "custom": [own, plain],
        },
    )
    moment = datetime(2026, 9, 21, 10, tzinfo=SHANGHAI)
    moved, _number = complaint_at(app, tenant, agent, moment)
    kept, _number = complaint_at(app, tenant, agent, moment, kind="inquiry")
    # 10 days after 21 Sep is 1 Oct: National Day moves the one, not the other.
    assert regulatory(app, tenant, moved).due_at == datetime(2026, 10, 9, tzinfo=SHANGHAI)
    assert regulatory(app, tenant, kept).due_at == datetime(2026, 10, 2, tzinfo=SHANGHAI)
    with acting_for(app, tenant):
        stored = versions.current(ConfigKind.DEADLINES).body["custom"]
    assert stored[0]["country"] == "CN" and stored[0]["roll_forward"] is True


def test_a_tenants_own_profile_names_only_a_known_country(app, make_tenant):
    tenant = make_tenant()
    bad = {"code": "ours", "name": "Ours", "days": 10, "unit": "calendar_days", "country": "FR"}
    with acting_for(app, tenant), pytest.raises(DomainError) as refused:
        versions.save(ConfigKind.DEADLINES, "default", {"custom": [bad]}, actor=OPERATOR)
    assert str(refused.value.message) == "Count official working days of CN, GB, US, or of your calendar."


# --- the US -------------------------------------------------------------------------------


def test_cfpb_days_end_at_midnight_in_new_york_whatever_the_desks_zone(app, make_tenant, make_user):
    tenant, agent = desk(
        app,
        make_tenant,
        make_user,
        timezone="Asia/Shanghai",
        hours="mon-fri 09:00-18:00",
        deadlines=assigning(("complaint", "*", "us-cfpb")),
    )
    # 10:00 on 16 Sep in Shanghai is 22:00 on the 15th in New York: received on the 15th;
    # 15 days later is 30 Sep, which ends at midnight New York time.
    ticket_id, _number = complaint_at(app, tenant, agent, datetime(2026, 9, 16, 10, tzinfo=SHANGHAI))
    response = regulatory(app, tenant, ticket_id, Metric.REGULATORY_RESPONSE)
    assert response.due_at == datetime(2026, 10, 1, tzinfo=NEW_YORK)


# --- the true time of receipt ---------------------------------------------------------------


def test_a_complaint_logged_late_runs_its_regulatory_clock_from_its_true_receipt(app, make_tenant, make_user):
    tenant, _agent = desk(
        app,
        make_tenant,
        make_user,
        timezone="Asia/Shanghai",
        hours="mon-fri 09:00-18:00",
        deadlines=assigning(("complaint", "*", "cn-telecom")),
    )
    logged = datetime(2026, 9, 30, 10, tzinfo=SHANGHAI)
    letter_came = datetime(2026, 9, 20, 15, tzinfo=SHANGHAI)
    with travel(logged), acting_for(app, tenant):
        ticket = Ticket(
            kind=Kind.COMPLAINT,
            channel=Channel.PHONE,
            priority=Priority.NORMAL,
            created_at=logged.astimezone(UTC),
        )
        planned = {
            clock.metric: clock for clock in clocks.plan_ticket_clocks(ticket, received_at=letter_came)
        }
    final = planned[Metric.REGULATORY_FINAL]
    assert final.started_at == letter_came and final.state == ClockState.RUNNING
    # 15 days after 20 Sep is 5 Oct, in National Day: moved to the end of 8 Oct.
    assert final.due_at == datetime(2026, 10, 9, tzinfo=SHANGHAI)
    # The desk's own clocks start when the desk logged it.
    assert planned[Metric.FIRST_RESPONSE].started_at == logged.astimezone(UTC)


def test_staff_moving_the_receipt_earlier_restarts_the_regulatory_clocks_and_breaches_a_past_one(
    app, make_tenant, make_user
):
    tenant, agent = desk(
        app,
        make_tenant,
        make_user,
        timezone="Asia/Shanghai",
        hours="mon-fri 09:00-18:00",
        deadlines=assigning(("complaint", "*", "cn-telecom")),
    )
    logged = datetime(2026, 10, 20, 10, tzinfo=SHANGHAI)
    ticket_id, _number = complaint_at(app, tenant, agent, logged)
    with travel(logged + timedelta(hours=1)), acting_for(app, tenant) as session:
        ticket = session.get(Ticket, ticket_id)
        with pytest.raises(DomainError):
            clocks.move_receipt(ticket, logged + timedelta(minutes=5), actor=OPERATOR)
        # The letter came on 30 Sep: 15 days end on 15 Oct, already past.
        [moved] = clocks.move_receipt(ticket, datetime(2026, 9, 30, 16, tzinfo=SHANGHAI), actor=OPERATOR)
        session.commit()
        final = clocks_by_metric(ticket_id)[Metric.REGULATORY_FINAL]
        assert moved.id == final.id and final.started_at == datetime(2026, 9, 30, 16, tzinfo=SHANGHAI)
        assert final.due_at == final.breached_at == datetime(2026, 10, 16, tzinfo=SHANGHAI)
        # The desk's own clock keeps its start.
        assert clocks_by_metric(ticket_id)[Metric.FIRST_RESPONSE].started_at == logged
        restarted = events(session, "clock.restarted", ticket_id)
        assert [c["metric"] for c in restarted[0].data["clocks"]] == ["regulatory_final"]
        [breach] = events(session, "clock.breached", ticket_id)
        assert breach.data["detected_by"] == "restarted"


# --- importing a country's public holidays -------------------------------------------------


def test_import_holidays_takes_england_and_wales_bank_holidays(app, runner, make_tenant):
    tenant = make_tenant(timezone="Europe/London", currency="GBP")
    result = runner.invoke(
        args=["calendar", "import-holidays", "--tenant", tenant.slug, "--country", "GB", "--year", "2026"]
    )
    assert result.exit_code == 0, result.output
    assert result.output == "Business hours v2 saved\n"
    again = runner.invoke(
        args=["calendar", "import-holidays", "--tenant", tenant.slug, "--country", "gb", "--year", "2026"]
    )
    assert again.output == "no change: the calendar already says so\n"
    shown = runner.invoke(args=["calendar", "show", "--tenant", tenant.slug]).output
    for line in (
        "holiday 2026-04-03 Fri Good Friday",
        "holiday 2026-05-25 Mon Spring Bank Holiday",
        "holiday 2026-08-31 Mon Late Summer Bank Holiday",
        "holiday 2026-12-28 Mon Boxing Day (observed)",
    ):
        assert line in shown
    assert "Saint Andrew" not in shown  # Scotland's, not England and Wales's
    scotland = runner.invoke(
        args=[
            "calendar",
            "import-holidays",
            "--tenant",
            tenant.slug,
            "--country",
            "GB",
            "--subdivision",
            "SCT",
            "--year",
            "2026",
            "--calendar",
            DEFAULT_CALENDAR,
        ]
    )
    assert (
        scotland.exit_code == 0
        and "Saint Andrew" in runner.invoke(args=["calendar", "show", "--tenant", tenant.slug]).output
    )


def test_import_holidays_for_china_takes_the_make_up_working_days_too(app, runner, make_tenant):
    tenant = make_tenant(timezone="Asia/Shanghai")
    result = runner.invoke(
        args=["calendar", "import-holidays", "--tenant", tenant.slug, "--country", "CN", "--year", "2026"]
    )
    assert result.output == "Business hours v2 saved\n"
    shown = runner.invoke(args=["calendar", "show", "--tenant", tenant.slug]).output
    assert "holiday 2026-10-01 Thu National Day" in shown
    assert "working day 2026-10-10 Sat 09:00-18:00" in shown


@pytest.mark.parametrize(
    "args, message",
    [
        (["--country", "XX", "--year", "2026"], "“XX” is not a country the holidays package knows"),
        (["--country", "GB", "--subdivision", "LDN", "--year", "2026"], "GB has no region “LDN”"),
        (["--country", "GB", "--year", "1850"], "knows GB from 1872 to 2100, not 1850"),
        (["--country", "GB", "--year", "2150"], "knows GB from 1872 to 2100, not 2150"),
        (["--country", "GB", "--year", "3000"], "3000 is not in the range"),
        (["--country", "CN", "--year", "2099"], "chinesecalendar"),
    ],
)
def test_import_holidays_refuses_an_unknown_country_or_year_and_changes_nothing(
    app, runner, make_tenant, args, message
):
    tenant = make_tenant(timezone="Europe/London")
    result = runner.invoke(args=["calendar", "import-holidays", "--tenant", tenant.slug, *args])
    assert result.exit_code != 0 and message in result.output, result.output
    assert "Business hours v1 (" in runner.invoke(args=["calendar", "show", "--tenant", tenant.slug]).output


def test_the_builtin_profiles_say_where_their_days_are_counted():
    where = {code: (p.country, p.timezone, p.roll_forward) for code, p in BUILTIN_PROFILES.items()}
    assert where == {
        "cn-telecom": ("CN", "Asia/Shanghai", True),
        "cn-12315-odr": ("CN", "Asia/Shanghai", True),
        "cn-12321": ("CN", "Asia/Shanghai", True),
        "uk-fca": ("GB", "Europe/London", False),
        "uk-psd": ("GB", "Europe/London", False),
        "us-cfpb": ("US", "America/New_York", False),
    }
