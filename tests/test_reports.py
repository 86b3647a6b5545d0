"""Manager reports: periods, SLA attainment and the complaints return, each on a data set
whose answers are worked out by hand here; the CSV and JSON outputs; the pages, their
permissions and isolation; and ``reports verify``, which recomputes them from the trail."""

import dataclasses
import json
import re
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import update

from crm.auth.models import User
from crm.notify.models import OutboxMessage
from crm.reports import complaints, digest, periods, sla
from crm.sla.models import Clock, ClockState
from crm.tickets.models import Ticket
from tests import test_refunds
from tests.conftest import CSRF_RE, acting_for, login, requires_postgres
from tests.test_refunds import DENIED, FULL, PARTIAL, decide, received, staff_client
from tests.test_sla import shanghai, travel

SEP_TO_NOV = ("--from", "2026-09-01", "--to", "2026-11-30")
desk = test_refunds.desk  # a Shanghai provider under the example policy
DECISION_ERRORS = re.compile(r"(?:invalid-feedback|alert-danger)[^>]*>([^<]+)<")


# --- periods ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "first", "last"),
    [
        ("this_week", date(2026, 12, 14), date(2026, 12, 20)),
        ("last_week", date(2026, 12, 7), date(2026, 12, 13)),
        ("this_month", date(2026, 12, 1), date(2026, 12, 31)),
        ("last_month", date(2026, 11, 1), date(2026, 11, 30)),
        ("this_quarter", date(2026, 10, 1), date(2026, 12, 31)),
        ("last_quarter", date(2026, 7, 1), date(2026, 9, 30)),
    ],
)
def test_presets_are_whole_local_days(name, first, last):
    period = periods.preset(name, date(2026, 12, 16), "Asia/Shanghai")
    assert (period.first_day, period.last_day) == (first, last)
    # Midnight in Shanghai is 16:00 UTC the day before.
    assert period.start == datetime.combine(first - timedelta(days=1), datetime.min.time(), UTC).replace(
        hour=16
    )


def test_a_custom_period_must_run_forwards_and_not_too_long():
    with pytest.raises(Exception, match="cannot end before"):
        periods.between(date(2026, 2, 1), date(2026, 1, 1), "UTC")
    with pytest.raises(Exception, match="at most three years"):
        periods.between(date(2020, 1, 1), date(2026, 1, 1), "UTC")


# --- SLA attainment, by hand --------------------------------------------------------------------


def fact(
    n, due, *, met=None, breached=None, state=None, metric="first_response", started=None, assignee=None
):
    due = datetime(2026, 9, due, 12, tzinfo=UTC)
    return sla.ClockFact(
        clock_id=n,
        metric=metric,
        state=state or (ClockState.MET if met else ClockState.RUNNING),
        unit="calendar_days",  # no business time: calendar time only
        started_at=started or due - timedelta(hours=10),
        due_at=due,
        met_at=met,
        breached_at=breached,
        paused_seconds=0,
        calendar_version_id=None,
        assignee_id=assignee,
    )


def test_sla_attainment_counts_by_due_time_and_reads_medians_and_the_90th_percentile():
    period = periods.between(date(2026, 9, 1), date(2026, 9, 30), "UTC")
    now = datetime(2026, 9, 20, tzinfo=UTC)
    due = lambda day, hour=12: datetime(2026, 9, day, hour, tzinfo=UTC)  # noqa: E731
    facts = [
        # Met on time after 2, 4 and 6 hours (started 10 h before a due time at noon).
        fact(1, 10, met=due(10, 4), assignee=7),
        fact(2, 11, met=due(11, 6), assignee=7),
        fact(3, 12, met=due(12, 8), assignee=8),
        # Met 2 h late, after 12 hours.
        fact(4, 13, met=due(13, 14), breached=due(13), assignee=8),
        # Breached and still running; due before now without a recorded breach counts too.
        fact(5, 14, breached=due(14)),
        fact(6, 15),
        # Not yet due; and one due outside the period.
        fact(7, 25),
        fact(8, 30, met=due(30, 4)),
    ]
    facts.append(dataclasses.replace(fact(9, 10), due_at=datetime(2026, 10, 2, tzinfo=UTC)))
    [row] = sla.count(facts, period, now=now)
    assert (row.due, row.met_on_time, row.met_late, row.breached_open, row.not_yet_due) == (8, 4, 1, 2, 1)
    assert row.attainment == pytest.approx(100 * 4 / 7)
    # Met after 2, 4, 6, 12 and (clock 8) 2 hours: median 4 h, 90th percentile 12 h.
    assert row.median("calendar") == 4 * 3600 and row.p90("calendar") == 12 * 3600
    assert row.median("business") is None
    by_assignee = {r.group: r for r in sla.count(facts, period, now=now, group_by="assignee")}
    assert (by_assignee[7].met_on_time, by_assignee[8].met_on_time, by_assignee[8].met_late) == (2, 1, 1)
    weeks = {r.group: r.due for r in sla.count(facts, period, now=now, group_by="week")}
    # Weeks from Monday: Sep 10-13 are in the week of the 7th; 14-15; 25; 30.
    assert weeks == {date(2026, 9, 7): 4, date(2026, 9, 14): 2, date(2026, 9, 21): 1, date(2026, 9, 28): 1}


# --- the complaints return, by hand -------------------------------------------------------------


def complaint(n, received, closed=None, outcome=None, reason="unused_balance", profile=None, on_time=None):
    return complaints.ComplaintFact(n, reason, received, closed, outcome, profile, on_time)


def test_the_complaints_return_on_a_constructed_set():
    period = periods.between(date(2026, 9, 1), date(2026, 11, 30), "UTC")
    day = lambda m, d: datetime(2026, m, d, 10, tzinfo=UTC)  # noqa: E731
    three_days = lambda received: received + timedelta(days=3)  # noqa: E731  (stand-in for the calendar)
    facts = [
        complaint(1, day(7, 1)),  # outstanding throughout
        complaint(2, day(8, 20), day(9, 10), "approved_full"),  # outstanding at start, closed in 8 weeks
        complaint(3, day(9, 16), day(9, 17), "approved_partial", profile="cn-telecom", on_time=True),
        complaint(4, day(9, 16), day(9, 25), "denied", reason="other", profile="cn-telecom", on_time=False),
        complaint(5, day(9, 16), day(11, 20), None),  # after 8 weeks (Nov 11), no decision
        complaint(6, day(11, 29), day(12, 2), "denied"),  # opened in, closed after the period
        complaint(7, day(6, 1), day(8, 1), "approved_full"),  # closed before: not in the return
    ]
    payouts = [("CNY", 7550, day(9, 20)), ("CNY", 100, day(12, 1)), ("USD", 500, day(10, 1))]
    escalations = [
        complaints.EscalationFact("platform_12315", date(2026, 10, 5), "for_customer", date(2026, 11, 2)),
        complaints.EscalationFact("platform_12315", date(2026, 10, 9), "settled", date(2026, 12, 3)),
        complaints.EscalationFact("court", date(2026, 8, 31)),  # before the period: not counted
    ]
    result = complaints.count(
        facts, period, three_days_end=three_days, payouts=payouts, escalations=escalations
    )
    totals = result.total.totals()
    assert totals == {
        "outstanding_at_start": 2,  # 1, 2
        "opened": 4,  # 3, 4, 5, 6
        "closed_within_3_business_days": 1,  # 3
        "closed_within_8_weeks": 2,  # 2, 4
        "closed_after_8_weeks": 1,  # 5
        "outstanding_at_end": 2,  # 1, 6
        "upheld_approved_full": 1,
        "upheld_approved_partial": 1,
        "upheld_denied": 1,
        "no_decision": 1,
    }
    assert result.total.share("denied") == pytest.approx(100 / 3)
    assert result.by_reason["other"].closed == 1 and result.by_reason["unused_balance"].opened == 3
    assert result.redress_paid == {"CNY": 7550, "USD": 500}
    assert result.china["telecom_15_days"] == (1, 2)
    assert result.escalations == {"platform_12315": 2}
    # Settled only after the period ended: still pending at its end.
    assert result.escalation_outcomes == {
        ("platform_12315", "for_customer"): 1,
        ("platform_12315", "pending"): 1,
    }


# --- the whole desk: tables, trail, CLI, pages --------------------------------------------------


@pytest.fixture
def history(app, desk, make_tenant):
    """Three refund requests received on Wed Sep 16 and one on Jul 1, decided at known
    times; another tenant's request in the same weeks."""
    with travel(shanghai(2026, 7, 1, 10)):
        still_open = received(app, desk.tenant, purchased=date(2026, 6, 1))
    with travel(shanghai(2026, 9, 16, 10)):
        partial, denied, late = (received(app, desk.tenant) for _ in range(3))
        decide(staff_client(app, desk.tenant, desk.agent), desk.tenant, partial.number, **PARTIAL)
    with travel(shanghai(2026, 9, 22, 10)):  # after Thu, Fri and Mon: past 3 business days
        decide(staff_client(app, desk.tenant, desk.agent), desk.tenant, denied.number, **DENIED)
    with travel(shanghai(2026, 11, 20, 10)):  # more than 8 weeks after Sep 16
        response = decide(
            staff_client(app, desk.tenant, desk.agent), desk.tenant, late.number, **FULL, amount="199.00"
        )
        assert response.status_code == 302, re.findall(
            r"(?:invalid-feedback|alert-danger)[^>]*>([^<]+)<", response.text
        )
    with travel(shanghai(2026, 9, 16, 11)):
        received(app, make_tenant())
    return still_open


def run(runner, *args):
    return runner.invoke(args=["reports", *args])


def test_the_return_from_the_tables_matches_the_hand_count_and_the_trail_agrees(app, runner, desk, history):
    result = run(runner, "complaints", "--tenant", desk.tenant.slug, *SEP_TO_NOV, "--format", "json")
    assert result.exit_code == 0, result.output
    tables = {table["table"]: table["rows"] for table in json.loads(result.output)["tables"]}
    counts = {row["measure"]: row["count"] for row in tables["return"]}
    assert counts["Complaints outstanding at the start of the period"] == 1
    assert counts["Opened in the period"] == 3
    assert counts["Closed within 3 business days"] == 1
    assert counts["Closed after 3 business days, within 8 weeks"] == 1
    assert counts["Closed after 8 weeks"] == 1
    assert counts["Outstanding at the end of the period"] == 1
    assert (counts["Upheld in full"], counts["Upheld in part"], counts["Not upheld"]) == (1, 1, 1)
    verified = run(runner, "verify", "--tenant", desk.tenant.slug, *SEP_TO_NOV)
    assert verified.exit_code == 0, verified.output
    assert verified.output.rstrip().endswith("measures agree")
    assert "complaints opened" in verified.output and "sla first_response.due" in verified.output


@requires_postgres
@pytest.mark.parametrize("group_by", sla.GROUPS)
def test_postgresql_counts_the_same_rows_as_the_facts_do(app, desk, history, group_by):
    """The SLA report is counted by the database on PostgreSQL: every count, median and
    90th percentile must be what counting the clocks one by one gives."""
    period = periods.between(date(2026, 7, 1), date(2026, 12, 31), "Asia/Shanghai")
    now = shanghai(2026, 12, 3, 10)
    with acting_for(app, desk.tenant):
        counted = sla.rows_in_database(period, sla.Filters(), now=now, group_by=group_by)
        by_hand = sla.count(sla.facts_from_clocks(period), period, now=now, group_by=group_by)

    def shown(rows):
        return [
            (
                r.metric,
                r.group,
                r.totals(),
                *(f(kind) for kind in ("calendar", "business") for f in (r.median, r.p90)),
            )
            for r in rows
        ]

    assert counted is not None and len(counted) >= 3
    assert any(r.median("business") for r in counted)  # business time is in the comparison
    assert shown(counted) == shown(by_hand)


@requires_postgres
def test_clocks_met_before_their_business_time_was_kept_are_counted_one_by_one(app, runner, desk, history):
    period = periods.between(date(2026, 7, 1), date(2026, 12, 31), "Asia/Shanghai")
    now = shanghai(2026, 12, 3, 10)
    with acting_for(app, desk.tenant) as session:
        session.execute(update(Clock).values(met_business_seconds=None))
        session.commit()
        assert sla.rows_in_database(period, sla.Filters(), now=now) is None
    result = runner.invoke(args=["sla", "backfill-met-times"])
    assert result.exit_code == 0 and f"{desk.tenant.slug}: " in result.output, result.output
    with acting_for(app, desk.tenant):
        assert sla.rows_in_database(period, sla.Filters(), now=now) is not None


def test_verify_fails_when_a_table_was_changed_behind_the_trails_back(app, runner, desk, history):

    with acting_for(app, desk.tenant) as session:
        ticket = session.scalars(
            __import__("sqlalchemy").select(Ticket).where(Ticket.number == history.number)
        ).one()
        ticket.received_at = shanghai(2026, 9, 2, 10)  # moved into the period, with no event
        session.commit()
    verified = run(runner, "verify", "--tenant", desk.tenant.slug, *SEP_TO_NOV)
    assert verified.exit_code == 1
    assert "DIFFERS" in verified.output


def test_the_csv_has_a_byte_order_mark_and_the_pages_language(app, client, desk, history):
    with travel(shanghai(2026, 12, 3, 10)):
        manager = staff_client(app, desk.tenant, desk.manager)
        query = "period=custom&first_day=2026-09-01&last_day=2026-11-30"
        english = manager.get(f"/t/{desk.tenant.slug}/reports/complaints?{query}&format=csv")
        manager.post(f"/t/{desk.tenant.slug}/language", data={})  # no token: ignored
        page = manager.get(f"/t/{desk.tenant.slug}/reports?{query}")
    assert english.status_code == 200 and english.data.startswith("\ufeff".encode())
    assert english.headers["Content-Type"].startswith("text/csv")
    assert "Opened in the period,3" in english.data.decode("utf-8-sig")
    assert page.status_code == 200 and 'id="chart-attainment"' in page.text and "<svg" in page.text


def test_reports_are_for_managers_admins_and_auditors_of_the_tenant(
    app, client, desk, history, make_tenant, make_user
):
    url = f"/t/{desk.tenant.slug}/reports/complaints?period=last_quarter"
    login(client, desk.tenant, desk.agent)
    assert client.get(url).status_code == 403
    other = make_tenant()
    outsider = app.test_client()
    login(outsider, other, make_user(other, "manager"))
    assert outsider.get(url).status_code in (302, 404)
    mine = outsider.get(
        f"/t/{other.slug}/reports/complaints?period=custom&first_day=2026-09-01&last_day=2026-11-30&format=csv"
    )
    assert "Opened in the period,0,\r\n" in mine.data.decode("utf-8-sig")  # none of the desk's three


@pytest.mark.parametrize(
    "query",
    [
        "period=custom&first_day=2026-12-01&last_day=2026-01-01",
        "period=custom&first_day=2026-01-01",
        "period=bogus",
        "period=custom&first_day=1-01-01&last_day=9999-12-31",
        "by=nonsense",
        "assignee=99999999999999999999",
    ],
)
def test_bad_periods_and_filters_are_400_with_a_message(app, client, desk, query):
    login(client, desk.tenant, desk.manager)
    response = client.get(f"/t/{desk.tenant.slug}/reports?{query}")
    assert response.status_code == 400
    assert "invalid-feedback" in response.text or "is-invalid" in response.text


@pytest.mark.parametrize("by", sla.GROUPS)
def test_the_sla_report_prints_from_the_command_line(app, runner, desk, history, by):
    result = run(runner, "sla", "--tenant", desk.tenant.slug, *SEP_TO_NOV, "--format", "json", "--by", by)
    assert result.exit_code == 0, result.output
    (table,) = json.loads(result.output)["tables"]
    assert table["table"] == "sla" and sum(row["due"] for row in table["rows"]) >= 3


def test_the_refunds_report_sums_requested_decided_and_paid(app, runner, desk, history):
    result = run(runner, "refunds", "--tenant", desk.tenant.slug, *SEP_TO_NOV, "--format", "json")
    assert result.exit_code == 0, result.output
    tables = {table["table"]: table["rows"] for table in json.loads(result.output)["tables"]}
    # Three requests of 199.00 on Sep 16; decided 75.50 + 0 + 199.00; nothing paid yet.
    assert tables["refund_totals"] == [
        {"currency": "CNY", "requests": 3, "requested": "597.00", "decided": "274.50", "paid": "0.00"}
    ]
    outcomes = {row["key"]: (row["decisions"], row["amount"]) for row in tables["refunds_by_outcome"]}
    assert outcomes == {
        "Approved in full": (1, "199.00"),
        "Approved in part": (1, "75.50"),
        "Denied": (1, "0.00"),
    }
    # Decided after 0, 6 and 65 days: the median is 6.
    timing = {row["measure"]: row["days"] for row in tables["refund_timing"]}
    assert timing["From receipt to decision"] == 6.0


def test_the_refunds_and_agents_reports_follow_the_filters(app, desk, history):
    with travel(shanghai(2026, 12, 3, 10)):
        manager = staff_client(app, desk.tenant, desk.manager)
        period = "period=custom&first_day=2026-09-01&last_day=2026-11-30&format=csv"

        def csv_of(report, extra=""):
            response = manager.get(f"/t/{desk.tenant.slug}/reports/{report}?{period}{extra}")
            assert response.status_code == 200
            return response.data.decode("utf-8-sig")

        assert "CNY,3,597.00,274.50,0.00" in csv_of("refunds", "&reason=unused_balance")
        other = csv_of("refunds", "&reason=other")
        assert "CNY,3," not in other and "Approved in full" not in other
        assert "Approved in full" not in csv_of("refunds", "&kind=inquiry")
        everyone = csv_of("agents")
        only_agent = csv_of("agents", f"&assignee={desk.agent.id}")
    names = {row.split(",")[0] for row in everyone.splitlines()[2:] if row}
    assert len(names) >= 3
    with acting_for(app, desk.tenant) as session:
        agent_name = session.get(User, desk.agent.id).display_name
    assert [row.split(",")[0] for row in only_agent.splitlines()[2:] if row] == [agent_name]


def test_the_leads_report_counts_sources_the_funnel_and_lost_reasons(app, runner, make_tenant, make_user):
    from crm.audit.service import Actor
    from crm.auth.models import User
    from crm.leads import intake, pipeline

    tenant = make_tenant()
    agent = make_user(tenant, "agent")
    actor = Actor.operator("test")
    with travel(shanghai(2026, 9, 16, 10)), acting_for(app, tenant) as session:
        user = session.get(User, agent.id)
        stages = [None, "contacted", "qualified", "won", "lost"]
        for n, stage in enumerate(stages):
            details = intake.LeadDetails(
                name=f"Lead {n}", phone=f"1390013900{n}", utm_source="wechat" if n % 2 else None
            )
            lead = intake.receive(
                details, source="web_form", actor=actor, ip=None, proofs=[(None, True, "form")]
            ).lead
            if stage:
                pipeline.log_call(lead, pipeline.CallLog("answered"), user=user, actor=actor)
            if stage in ("qualified", "won"):
                pipeline.set_stage(lead, "qualified", user=user, actor=actor)
            if stage == "won":
                pipeline.set_stage(lead, "won", user=user, actor=actor)
            if stage == "lost":
                pipeline.set_stage(lead, "lost", user=user, actor=actor, lost_reason="Too expensive")
        session.commit()
    result = run(runner, "leads", "--tenant", tenant.slug, *SEP_TO_NOV, "--format", "json")
    assert result.exit_code == 0, result.output
    tables = {table["table"]: table["rows"] for table in json.loads(result.output)["tables"]}
    assert {row["source"]: row["leads"] for row in tables["lead_sources"]} == {"wechat": 2, "web_form": 3}
    funnel = {row["stage"]: (row["leads"], row["percent"]) for row in tables["funnel"]}
    # Five received; four were contacted (3 went on, 1 lost after it), two qualified, one won.
    assert funnel["New"] == (5, 100.0) and funnel["Won"] == (1, 20.0) and funnel["Lost"] == (1, 20.0)
    assert funnel["Contacted"] == (4, 80.0) and funnel["Qualified"] == (2, 40.0)
    assert tables["lost_reasons"] == [{"reason": "Too expensive", "leads": 1}]
    first = {row["measure"]: row["value"] for row in tables["first_contact"]}
    assert first["Kept"] == 4 and first["Missed, not yet contacted"] == 1


@pytest.mark.parametrize("report", ["", "/complaints", "/refunds", "/leads", "/agents"])
@pytest.mark.parametrize("locale", ["en", "zh_CN"])
def test_every_report_page_opens_in_both_languages_with_a_chart_and_a_table(app, desk, report, locale):
    with travel(shanghai(2026, 12, 3, 10)):
        manager = staff_client(app, desk.tenant, desk.manager)
        manager.post(f"/t/{desk.tenant.slug}/account", data={})
        page = manager.get(
            f"/t/{desk.tenant.slug}/reports{report}?period=last_quarter", headers={"Accept-Language": locale}
        )
        csv = manager.get(f"/t/{desk.tenant.slug}/reports{report}?period=last_quarter&format=csv")
    assert page.status_code == 200
    assert "<svg" in page.text and "<table" in page.text
    assert csv.status_code == 200 and csv.data.startswith(b"\xef\xbb\xbf")


def test_the_weekly_report_goes_on_monday_from_nine_once_to_managers_who_asked(app, runner, desk, history):
    with travel(shanghai(2026, 9, 20, 10)):
        manager = staff_client(app, desk.tenant, desk.manager)
        page = manager.get(f"/t/{desk.tenant.slug}/account")
        assert "Weekly report by email" in page.text
        token = CSRF_RE.search(page.text).group(1)
        saved = manager.post(
            f"/t/{desk.tenant.slug}/account",
            data={"csrf_token": token, "notify-email_notifications": "on", "notify-weekly_digest": "y"},
        )
        assert saved.status_code == 302
    with app.app_context():
        with travel(shanghai(2026, 9, 21, 8, 59)):
            assert digest.send_due() == 0
        with travel(shanghai(2026, 9, 21, 9, 0)):
            assert digest.send_due() == 1
            assert digest.send_due() == 0  # once a week
    with acting_for(app, desk.tenant) as session:
        from sqlalchemy import select as select_

        [mail] = session.scalars(
            select_(OutboxMessage).where(OutboxMessage.subject.contains("2026-09-14"))
        ).all()
        assert mail.to_address == desk.manager.email
        assert "Complaints: 3 opened, 1 closed" in mail.body
        assert "/reports/complaints?" in mail.body
    result = runner.invoke(args=["reports", "send-digests"])
    assert result.exit_code == 0 and result.output.startswith("sent ")


def test_a_number_in_the_sla_report_opens_the_tickets_behind_it(app, desk, history):
    from html import unescape

    with travel(shanghai(2026, 12, 3, 10)):
        manager = staff_client(app, desk.tenant, desk.manager)
        page = manager.get(
            f"/t/{desk.tenant.slug}/reports?period=custom&first_day=2026-09-01&last_day=2026-11-30"
        )
        first_response = re.search(
            r"<th scope=\"row\"[^>]*>First response</th>(.*?)</tr>", page.text, re.S
        ).group(1)
        link = unescape(re.search(r'<a href="([^"]+)">3</a>', first_response).group(1))
        queue = manager.get(link)
    assert queue.status_code == 200 and 'id="clock-filter"' in queue.text
    references = set(re.findall(r">(RF-\d+)</a>", queue.text))
    assert len(references) == 3 and f"RF-{history.number}" not in references


def test_the_return_follows_the_filters(app, desk, history):
    with travel(shanghai(2026, 12, 3, 10)):
        manager = staff_client(app, desk.tenant, desk.manager)
        base = (
            f"/t/{desk.tenant.slug}/reports/complaints?period=custom&first_day=2026-09-01&last_day=2026-11-30"
        )
        everything = manager.get(base + "&format=csv").data.decode("utf-8-sig")
        inquiries = manager.get(base + "&kind=inquiry&format=csv").data.decode("utf-8-sig")
        by_reason = manager.get(base + "&reason=other&format=csv").data.decode("utf-8-sig")
    assert "Opened in the period,3," in everything
    assert "Opened in the period,0," in inquiries, inquiries
    assert "Opened in the period,0," in by_reason, by_reason
