"""A breach is recorded when it happens, not when the sweep comes: every transition of a
clock (a pause, a reply, a resolution, a withdrawal, a resumption, a shorter target) checks
its own due time first. Whichever of the transition and the sweep comes first records the
breach, at the due time, once; the ticket page then says "Overdue" or "Met late".

The desk is the Shanghai one of test_sla (Mon-Fri 09:00-12:00, 13:30-18:00) with a short
policy: first response 1 h, next response 1 h, resolution 2 h. A request received on
Wednesday 16 Sep 2026 at 17:00 is due a first response at 18:00 that day, and a
resolution at 10:00 on Thursday (1 h on Wednesday, 1 h on Thursday morning)."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from crm.audit.chain import format_instant
from crm.audit.models import AuditEvent
from crm.sla import calendars, versions
from crm.sla.models import ClockState, ConfigKind, Metric
from crm.sla.rules import DEFAULT_CALENDAR, Action, Policy, Rule
from crm.tickets import service as tickets
from crm.tickets.models import Priority, Ticket
from tests.conftest import acting_for, login, requires_postgres
from tests.test_sla import (
    LUNCH_BREAK_HOURS,
    OPERATOR,
    WEDNESDAY_5PM,
    Desk,
    assert_audit_chain_verifies,
    clocks_by_metric,
    events,
    notified,
    open_by_staff,
    run_sweep,
    shanghai,
    staff,
    staff_mail,
    travel,
)

FIRST_DUE = shanghai(2026, 9, 16, 18)
RESOLUTION_DUE = shanghai(2026, 9, 17, 10)
SHORT_POLICY = Policy(
    (
        Rule(priority=Priority.URGENT, first_response=30, next_response=30, resolution=60),
        Rule(first_response=60, next_response=60, resolution=120),
    )
)


@pytest.fixture
def desk(app, make_tenant, make_user) -> Desk:
    """test_sla's Shanghai desk with its lunch break."""
    tenant = make_tenant(timezone="Asia/Shanghai")
    staff_users = {role: make_user(tenant, role) for role in ("agent", "manager", "admin", "auditor")}
    with acting_for(app, tenant) as session:
        calendars.set_hours(DEFAULT_CALENDAR, LUNCH_BREAK_HOURS, actor=OPERATOR)
        session.commit()
    return Desk(tenant, **staff_users)


@pytest.fixture
def short_desk(app, desk: Desk) -> Desk:
    with acting(app, desk) as session:
        versions.save(ConfigKind.SLA_POLICY, "default", SHORT_POLICY.to_json(), actor=OPERATOR)
        session.commit()
    return desk


def acting(app, desk: Desk):
    return acting_for(app, desk.tenant)


def received(app, desk: Desk) -> int:
    """A customer's question, logged by the agent on Wednesday at 17:00 and theirs."""
    with acting(app, desk) as session:
        ticket = open_by_staff(session, desk.agent, "inquiry", "phone")
        tickets.assign(ticket, desk.agent.id, user=staff(session, desk.admin), ip=None)
        session.commit()
        return ticket.id


def breaches_of(session, ticket_id: int, metric: str) -> list[dict]:
    return [e.data for e in events(session, "clock.breached", ticket_id) if e.data["metric"] == metric]


def assert_one_breach_each(app, desk: Desk, ticket_id: int) -> None:
    """Each of the ticket's breached clocks has exactly one breach event, at its due time."""
    with acting(app, desk) as session:
        breached = [c for c in clocks_by_metric(ticket_id).values() if c.breached_at is not None]
        assert breached
        for clock in breached:
            [breach] = breaches_of(session, ticket_id, clock.metric)
            assert breach["at"] == breach["due_at"] == format_instant(clock.due_at)


def page_of(client, desk: Desk, ticket_id: int, app) -> str:
    with acting(app, desk) as session:
        number = session.get(Ticket, ticket_id).number
    login(client, desk.tenant, desk.agent)
    response = client.get(f"/t/{desk.tenant.slug}/tickets/{number}")
    assert response.status_code == 200
    return response.text


def clock_line(page: str, label: str) -> str:
    """The ticket page's line for one clock: its label, badge and times."""
    start = page.index(f"<strong>{label}</strong>")
    return " ".join(page[start : page.index("</div>", start)].split())


def test_a_pause_after_the_due_time_records_the_breach_at_the_due_time(app, client, runner, short_desk):
    desk = short_desk
    with travel(WEDNESDAY_5PM) as traveller:
        ticket_id = received(app, desk)
        traveller.move_to(RESOLUTION_DUE + timedelta(seconds=20))  # before any sweep
        with acting(app, desk) as session:
            ticket = session.get(Ticket, ticket_id)
            tickets.request_information(ticket, "请提供账单。", user=staff(session, desk.agent), ip=None)
            session.commit()
            resolution = clocks_by_metric(ticket_id)[Metric.RESOLUTION]
            assert resolution.state == ClockState.PAUSED
            assert resolution.breached_at == resolution.due_at == RESOLUTION_DUE
            [breach] = breaches_of(session, ticket_id, "resolution")
            assert breach["at"] == "2026-09-17T02:00:00.000000Z" and breach["detected_by"] == "paused"
            # Told as the sweep would have: the assignee and the managers.
            assert notified(session, resolution.id) == {
                (desk.agent.id, "breached"),
                (desk.manager.id, "breached"),
                (desk.admin.id, "breached"),
            }
            # The breach comes before the pause in the trail.
            actions = [e.action for e in session.scalars(select(AuditEvent).order_by(AuditEvent.seq))]
            assert actions.index("clock.breached") < actions.index("clock.paused")

        traveller.move_to(RESOLUTION_DUE + timedelta(minutes=1))  # then the sweep comes
        run_sweep(app)
        assert_one_breach_each(app, desk, ticket_id)

        traveller.move_to(shanghai(2026, 9, 18, 10))  # the customer answers a day later
        with acting(app, desk) as session:
            tickets.customer_reply(session.get(Ticket, ticket_id), "账单已上传。", ip=None)
            session.commit()
            resolution = clocks_by_metric(ticket_id)[Metric.RESOLUTION]
            # Running again, still against the due time it missed; nothing recorded twice.
            assert resolution.state == ClockState.RUNNING and resolution.due_at == RESOLUTION_DUE
            assert len(breaches_of(session, ticket_id, "resolution")) == 1
        run_sweep(app)
        assert_one_breach_each(app, desk, ticket_id)
        line = clock_line(page_of(client, desk, ticket_id, app), "Resolution")
        assert "Overdue" in line and "Was due Thu, Sep 17 10:00" in line, line
    assert_audit_chain_verifies(runner, desk.tenant)


def test_resolving_during_that_pause_leaves_the_breach_and_reads_met_late(app, client, runner, short_desk):
    desk = short_desk
    with travel(WEDNESDAY_5PM) as traveller:
        ticket_id = received(app, desk)
        traveller.move_to(RESOLUTION_DUE + timedelta(seconds=20))
        with acting(app, desk) as session:
            ticket = session.get(Ticket, ticket_id)
            tickets.request_information(ticket, "请提供账单。", user=staff(session, desk.agent), ip=None)
            session.commit()
        traveller.move_to(shanghai(2026, 9, 18, 11))
        with acting(app, desk) as session:
            ticket = session.get(Ticket, ticket_id)
            tickets.resolve(ticket, "已退款。", user=staff(session, desk.agent), ip=None)
            session.commit()
            resolution = clocks_by_metric(ticket_id)[Metric.RESOLUTION]
            assert resolution.state == ClockState.MET and resolution.breached_at == RESOLUTION_DUE
            assert resolution.met_at - resolution.due_at == timedelta(days=1, hours=1)
            assert len(breaches_of(session, ticket_id, "resolution")) == 1
        run_sweep(app)
        assert_one_breach_each(app, desk, ticket_id)
        line = clock_line(page_of(client, desk, ticket_id, app), "Resolution")
        assert "Met late" in line and "1 d 1 h late" in line, line
    assert_audit_chain_verifies(runner, desk.tenant)


def test_a_late_reply_before_the_sweep_records_the_breach_and_tells_without_escalating(
    app, client, runner, desk
):
    with acting(app, desk) as session:
        escalating = Policy(
            (
                Rule(
                    first_response=60,
                    resolution=120,
                    actions=(Action.NOTIFY_MANAGERS, Action.RAISE_PRIORITY, Action.REASSIGN),
                    reassign_to="managers",
                ),
            )
        )
        versions.save(ConfigKind.SLA_POLICY, "default", escalating.to_json(), actor=OPERATOR)
        session.commit()
    with travel(WEDNESDAY_5PM) as traveller:
        ticket_id = received(app, desk)
        traveller.move_to(FIRST_DUE + timedelta(seconds=20))
        with acting(app, desk) as session:
            ticket = session.get(Ticket, ticket_id)
            tickets.reply(ticket, "我们正在处理。", user=staff(session, desk.agent), ip=None)
            session.commit()
            first = clocks_by_metric(ticket_id)[Metric.FIRST_RESPONSE]
            assert first.state == ClockState.MET and first.breached_at == first.due_at == FIRST_DUE
            [breach] = breaches_of(session, ticket_id, "first_response")
            assert breach["detected_by"] == "met" and breach["at"] == "2026-09-16T10:00:00.000000Z"
            assert notified(session, first.id) == {(desk.manager.id, "breached"), (desk.admin.id, "breached")}
            # Answered already: the ticket is neither raised nor taken from its agent.
            ticket = session.get(Ticket, ticket_id)
            assert (ticket.priority, ticket.assignee_id) == (Priority.NORMAL, desk.agent.id)
            assert [e.data["action"] for e in events(session, "sla.action", ticket_id)] == ["notify_breached"]
        traveller.move_to(FIRST_DUE + timedelta(minutes=1))
        run_sweep(app)
        assert_one_breach_each(app, desk, ticket_id)
        line = clock_line(page_of(client, desk, ticket_id, app), "First response")
        assert "Met late" in line, line
    assert_audit_chain_verifies(runner, desk.tenant)


def test_a_sweep_first_then_the_transition_records_one_breach(app, client, runner, short_desk):
    desk = short_desk
    with travel(WEDNESDAY_5PM) as traveller:
        ticket_id = received(app, desk)
        traveller.move_to(RESOLUTION_DUE + timedelta(seconds=30))
        run_sweep(app)  # first response (due 18:00 yesterday) and resolution are breached
        traveller.move_to(RESOLUTION_DUE + timedelta(minutes=5))
        with acting(app, desk) as session:
            ticket = session.get(Ticket, ticket_id)
            tickets.request_information(ticket, "请提供账单。", user=staff(session, desk.agent), ip=None)
            session.commit()
            by_metric = clocks_by_metric(ticket_id)
            assert by_metric[Metric.RESOLUTION].breached_at == RESOLUTION_DUE
            assert by_metric[Metric.FIRST_RESPONSE].breached_at == FIRST_DUE
            for metric in ("first_response", "resolution"):
                [breach] = breaches_of(session, ticket_id, metric)
                assert breach["detected_by"] == "sweep"
        page = page_of(client, desk, ticket_id, app)
        assert "Met late" in clock_line(page, "First response")
        assert "Overdue" in clock_line(page, "Resolution")
    assert_audit_chain_verifies(runner, desk.tenant)


def test_a_transition_first_then_the_sweep_records_one_breach(app, runner, short_desk):
    desk = short_desk
    with travel(WEDNESDAY_5PM) as traveller:
        ticket_id = received(app, desk)
        traveller.move_to(RESOLUTION_DUE + timedelta(seconds=20))
        with acting(app, desk) as session:  # withdrawn late: the clocks stop, breached first
            ticket = session.get(Ticket, ticket_id)
            tickets.withdraw_by_staff(ticket, user=staff(session, desk.agent), ip=None)
            session.commit()
            by_metric = clocks_by_metric(ticket_id)
            for metric, due in ((Metric.FIRST_RESPONSE, FIRST_DUE), (Metric.RESOLUTION, RESOLUTION_DUE)):
                assert by_metric[metric].state == ClockState.STOPPED
                assert by_metric[metric].breached_at == due
                [breach] = breaches_of(session, ticket_id, metric)
                assert breach["detected_by"] == "stopped"
            # One email each for both deadlines, as the sweep would send.
            mail = staff_mail(session, desk)
            assert sorted(m.to_address for m in mail) == sorted(
                user.email for user in (desk.agent, desk.manager, desk.admin)
            )
            assert {m.subject for m in mail} == {"2 deadlines need attention"}
        traveller.move_to(RESOLUTION_DUE + timedelta(minutes=1))
        run_sweep(app)
        assert_one_breach_each(app, desk, ticket_id)
        with acting(app, desk) as session:
            assert len(events(session, "clock.breached", ticket_id)) == 2
    assert_audit_chain_verifies(runner, desk.tenant)


def test_a_shorter_target_already_past_is_breached_by_the_priority_change(app, client, runner, short_desk):
    desk = short_desk
    with travel(WEDNESDAY_5PM) as traveller:
        ticket_id = received(app, desk)
        # Thursday 09:40, 1 h 40 min of business time after receipt: an urgent ticket's
        # resolution (1 h) was due at 18:00 on Wednesday.
        traveller.move_to(shanghai(2026, 9, 17, 9, 40))
        with acting(app, desk) as session:
            tickets.reply(session.get(Ticket, ticket_id), "收到。", user=staff(session, desk.agent), ip=None)
            session.commit()
            tickets.set_priority(
                session.get(Ticket, ticket_id), "urgent", user=staff(session, desk.agent), ip=None
            )
            session.commit()
            resolution = clocks_by_metric(ticket_id)[Metric.RESOLUTION]
            assert resolution.target == 60 and resolution.due_at == FIRST_DUE
            assert resolution.breached_at == FIRST_DUE
            [breach] = breaches_of(session, ticket_id, "resolution")
            assert breach["detected_by"] == "retargeted"
        run_sweep(app)
        assert_one_breach_each(app, desk, ticket_id)
        line = clock_line(page_of(client, desk, ticket_id, app), "Resolution")
        assert "Overdue" in line, line
    assert_audit_chain_verifies(runner, desk.tenant)


def test_acting_at_the_due_instant_is_in_time(app, runner, short_desk):
    desk = short_desk
    with travel(WEDNESDAY_5PM) as traveller:
        ticket_id = received(app, desk)
        traveller.move_to(FIRST_DUE)
        with acting(app, desk) as session:
            tickets.reply(session.get(Ticket, ticket_id), "收到。", user=staff(session, desk.agent), ip=None)
            session.commit()
            first = clocks_by_metric(ticket_id)[Metric.FIRST_RESPONSE]
            assert first.state == ClockState.MET and first.breached_at is None
            assert events(session, "clock.breached", ticket_id) == []


@requires_postgres
@pytest.mark.postgres
def test_a_pause_that_loaded_its_clock_before_the_sweep_recorded_the_breach_records_none(
    app, runner, short_desk
):
    """The transition read the clock (not yet breached), then the sweep breached it and
    committed: the transition's claim finds the breach taken, takes the row as it now is,
    and pauses it at the breached due time."""
    desk = short_desk
    with travel(WEDNESDAY_5PM) as traveller:
        ticket_id = received(app, desk)
        traveller.move_to(RESOLUTION_DUE + timedelta(seconds=20))
        with acting(app, desk) as session:
            ticket = session.get(Ticket, ticket_id)
            stale = clocks_by_metric(ticket_id)[Metric.RESOLUTION]
            assert stale.breached_at is None
            run_sweep(app)  # another session: breaches and commits
            assert stale.breached_at is None  # this session has not looked again
            tickets.request_information(ticket, "请提供账单。", user=staff(session, desk.agent), ip=None)
            session.commit()
            resolution = clocks_by_metric(ticket_id)[Metric.RESOLUTION]
            assert resolution.state == ClockState.PAUSED
            assert resolution.breached_at == resolution.due_at == RESOLUTION_DUE
            [breach] = breaches_of(session, ticket_id, "resolution")
            assert breach["detected_by"] == "sweep"
    assert_one_breach_each(app, desk, ticket_id)
    assert_audit_chain_verifies(runner, desk.tenant)
