"""SLA clocks end to end: exact business-time deadlines, pauses, pinned versions,
regulatory deadlines, the breach sweep and its actions, tenants kept apart, and the
operator commands. Expected times are worked out by hand in the comments."""

import itertools
import threading
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from rq import SimpleWorker
from sqlalchemy import select, text

from crm import jobs
from crm.audit.models import AuditEvent
from crm.audit.service import Actor
from crm.auth.models import User
from crm.extensions import db
from crm.notify.models import OutboxMessage, OutboxStatus
from crm.sla import calendars, clocks, sweep, versions
from crm.sla.models import Clock, ClockState, ConfigKind, Metric, Notification
from crm.sla.rules import DEFAULT_CALENDAR, MANAGERS_QUEUE, Action, Policy, Rule
from crm.tickets import service as tickets
from crm.tickets.models import Priority, Status, Ticket
from tenants import CurrentTenant, tenant_context
from tests.conftest import StaffUser, acting_for, requires_postgres, requires_redis
from tests.test_ticket_service import refund_request

SHANGHAI = ZoneInfo("Asia/Shanghai")
LONDON = ZoneInfo("Europe/London")
# 3 h in the morning and 4 h 30 m in the afternoon: 7 h 30 m a day.
LUNCH_BREAK_HOURS = "mon-fri 09:00-12:00,13:30-18:00"
OPERATOR = Actor.operator("test")
WEDNESDAY_5PM = datetime(2026, 9, 16, 17, tzinfo=SHANGHAI)


def shanghai(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


def travel(moment: datetime):
    return time_machine.travel(moment, tick=False)


@dataclass(frozen=True)
class Desk:
    """A Shanghai tenant whose desk closes for lunch, with one of each kind of staff."""

    tenant: CurrentTenant
    agent: StaffUser
    manager: StaffUser
    admin: StaffUser
    auditor: StaffUser

    @property
    def managers(self) -> set[int]:
        return {self.manager.id, self.admin.id}


@pytest.fixture
def desk(app, make_tenant, make_user) -> Desk:
    tenant = make_tenant(timezone="Asia/Shanghai")
    staff = {role: make_user(tenant, role) for role in ("agent", "manager", "admin", "auditor")}
    with acting_for(app, tenant) as session:
        calendars.set_hours(DEFAULT_CALENDAR, LUNCH_BREAK_HOURS, actor=OPERATOR)
        session.commit()
    return Desk(tenant, **staff)


# --- helpers -----------------------------------------------------------------------------


def submit_refund(app, tenant, nonce: str) -> int:
    """A refund request from the hosted form, received now; its ticket's id."""
    with acting_for(app, tenant) as session:
        ticket = tickets.submit_refund_request(refund_request(), nonce=nonce, ip=None).ticket
        session.commit()
        return ticket.id


def staff(session, user: StaffUser) -> User:
    return session.get(User, user.id)


def clocks_by_metric(ticket_id: int) -> dict[str, Clock]:
    """The ticket's clocks by metric (the newest one of a metric that has several)."""
    return {clock.metric: clock for clock in clocks.clocks_of("ticket", ticket_id)}


def events(session, action: str, subject_id: int | None = None) -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
    if subject_id is not None:
        query = query.where(AuditEvent.subject_id == str(subject_id))
    return list(session.scalars(query))


def metrics_in(event: AuditEvent) -> list[str]:
    return [clock["metric"] for clock in event.data["clocks"]]


def run_sweep(app) -> sweep.SweepResult:
    """The sweep as the scheduler runs it: its own app context, no tenant in it."""
    with app.app_context():
        return sweep.sweep()


def notified(session, clock_id: int | None = None) -> set[tuple[int, str]]:
    """(user id, event) of the tenant's in-app notifications, of one clock if given."""
    query = select(Notification)
    if clock_id is not None:
        query = query.where(Notification.clock_id == clock_id)
    return {(n.user_id, n.event) for n in session.scalars(query)}


def staff_mail(session, desk: Desk) -> list[OutboxMessage]:
    addresses = [user.email for user in (desk.agent, desk.manager, desk.admin, desk.auditor)]
    query = select(OutboxMessage).where(OutboxMessage.to_address.in_(addresses)).order_by(OutboxMessage.id)
    return list(session.scalars(query))


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def waiting_for_locks(count: int, seconds: float = 10) -> bool:
    """Whether ``count`` sessions of this PostgreSQL database come to wait for a lock."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE wait_event_type = 'Lock' AND datname = current_database()"
    )
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with db.engine.connect() as probe:
            if probe.execute(query).scalar() >= count:
                return True
        time.sleep(0.01)
    return False


def assert_audit_chain_verifies(runner, tenant) -> None:
    result = runner.invoke(args=["audit", "verify", "--tenant", tenant.slug])
    assert result.exit_code == 0 and result.output.startswith("ok: "), result.output


# --- deadlines on the business calendar ------------------------------------------------


def test_a_refund_gets_exact_deadlines_on_a_calendar_with_a_lunch_break(app, runner, desk):
    with travel(WEDNESDAY_5PM):
        ticket_id = submit_refund(app, desk.tenant, "n1")
    with acting_for(app, desk.tenant) as session:
        ticket = session.get(Ticket, ticket_id)
        by_metric = clocks_by_metric(ticket_id)
        assert set(by_metric) == {Metric.FIRST_RESPONSE, Metric.RESOLUTION}
        first, resolution = by_metric[Metric.FIRST_RESPONSE], by_metric[Metric.RESOLUTION]
        # The default policy's second rule covers a normal refund: 8 h, then 45 h.
        assert (first.rule, first.target, first.warn_percent) == ("2", 480, 80)
        assert (resolution.rule, resolution.target) == ("2", 2700)
        assert first.started_at == resolution.started_at == WEDNESDAY_5PM
        # 8 h = Wed 17:00-18:00 (1 h) + Thu 09:00-12:00 (3 h) + Thu 13:30-17:30 (4 h).
        assert first.due_at == shanghai(2026, 9, 17, 17, 30)
        # 80 % = 6 h 24 m = 1 h + 3 h + Thu 13:30-15:54.
        assert first.warn_at == shanghai(2026, 9, 17, 15, 54)
        # 45 h = Wed 1 h + 7 h 30 m each Thu, Fri, Mon, Tue, Wed (38 h 30 m) + next Thu
        # 09:00-12:00 and 13:30-17:00 (6 h 30 m); the weekend is closed.
        assert resolution.due_at == shanghai(2026, 9, 24, 17)
        assert ticket.respond_by == first.due_at
        assert ticket.due_at == first.due_at and ticket.warn_at == first.warn_at
        policy = versions.current(ConfigKind.SLA_POLICY)
        calendar = versions.calendar(DEFAULT_CALENDAR)
        assert calendar.version == 2  # the default, then the lunch break
        for clock in (first, resolution):
            assert clock.state == ClockState.RUNNING
            assert (clock.config_version_id, clock.calendar_version_id) == (policy.id, calendar.id)
        started = events(session, "clock.started", ticket_id)
        assert len(started) == 1
        summaries = {summary["metric"]: summary for summary in started[0].data["clocks"]}
        assert summaries[Metric.FIRST_RESPONSE]["due_at"] == "2026-09-17T09:30:00.000000Z"
        assert summaries[Metric.RESOLUTION]["due_at"] == "2026-09-24T09:00:00.000000Z"
        assert summaries[Metric.RESOLUTION]["calendar_version_id"] == calendar.id
    assert_audit_chain_verifies(runner, desk.tenant)


def test_waiting_for_the_customer_pauses_resolution_for_exactly_the_business_time_waited(app, runner, desk):
    with travel(WEDNESDAY_5PM) as traveller:
        ticket_id = submit_refund(app, desk.tenant, "n1")
        traveller.move_to(shanghai(2026, 9, 17, 11))
        with acting_for(app, desk.tenant) as session:
            ticket = session.get(Ticket, ticket_id)
            tickets.request_information(
                ticket, "请提供充值记录截图。", user=staff(session, desk.agent), ip=None
            )
            session.commit()
            resolution = clocks_by_metric(ticket_id)[Metric.RESOLUTION]
            assert ticket.status == Status.AWAITING_CUSTOMER
            assert resolution.state == ClockState.PAUSED
            assert resolution.due_at is None and resolution.check_at is None
            assert ticket.due_at is None  # first response met, resolution paused: nothing runs
        # Two business hours later: 11:00-12:00 and 13:30-14:30.
        traveller.move_to(shanghai(2026, 9, 17, 14, 30))
        with acting_for(app, desk.tenant) as session:
            ticket = session.get(Ticket, ticket_id)
            tickets.customer_reply(ticket, "截图见附件。", ip=None)
            session.commit()
            resolution = clocks_by_metric(ticket_id)[Metric.RESOLUTION]
            assert resolution.state == ClockState.RUNNING
            assert resolution.paused_seconds == 2 * 3600
            assert resolution.pauses == [
                {
                    "from": "2026-09-17T03:00:00.000000Z",
                    "to": "2026-09-17T06:30:00.000000Z",
                    "seconds": 7200,
                    "why": "awaiting_customer",
                }
            ]
            # Thu 24 17:00 moved by 2 h: Thu 17:00-18:00, then Fri 09:00-10:00.
            assert resolution.due_at == shanghai(2026, 9, 25, 10)
            # The warning moves too: 36 h + 2 h from Wed 17:00 ends Wed 23 at 17:30.
            assert resolution.warn_at == shanghai(2026, 9, 23, 17, 30)
            # The customer's message also wants an answer within 8 h: Thu 14:30-18:00 (3 h
            # 30 m), Fri 09:00-12:00, 13:30-15:00; the nearest deadline now.
            following = clocks_by_metric(ticket_id)[Metric.NEXT_RESPONSE]
            assert following.due_at == shanghai(2026, 9, 18, 15)
            assert ticket.due_at == following.due_at
            assert [metrics_in(e) for e in events(session, "clock.paused", ticket_id)] == [["resolution"]]
            resumed = events(session, "clock.resumed", ticket_id)
            assert [metrics_in(e) for e in resumed] == [["resolution"]]
            assert resumed[0].data["clocks"][0]["due_at"] == "2026-09-25T02:00:00.000000Z"
            assert resumed[0].data["clocks"][0]["paused_seconds"] == 7200
    assert_audit_chain_verifies(runner, desk.tenant)


def test_replies_meet_response_clocks_and_resolve_reopen_withdraw_drive_resolution(app, runner, desk):
    with travel(WEDNESDAY_5PM) as traveller:
        ticket_id = submit_refund(app, desk.tenant, "n1")

        traveller.move_to(shanghai(2026, 9, 17, 9, 30))
        with acting_for(app, desk.tenant) as session:
            ticket = session.get(Ticket, ticket_id)
            tickets.reply(ticket, "我们正在核实。", user=staff(session, desk.agent), ip=None)
            session.commit()
            first = clocks_by_metric(ticket_id)[Metric.FIRST_RESPONSE]
            assert first.state == ClockState.MET and first.met_at == shanghai(2026, 9, 17, 9, 30)
            assert first.breached_at is None and first.check_at is None
            assert ticket.respond_by == shanghai(2026, 9, 17, 17, 30)  # the promise stays on record
            assert ticket.due_at == shanghai(2026, 9, 24, 17)  # now resolution is the nearest

        traveller.move_to(shanghai(2026, 9, 17, 10))
        with acting_for(app, desk.tenant) as session:
            ticket = session.get(Ticket, ticket_id)
            tickets.customer_reply(ticket, "余额是 100 元。", ip=None)
            session.commit()
            following = clocks_by_metric(ticket_id)[Metric.NEXT_RESPONSE]
            assert following.started_at == shanghai(2026, 9, 17, 10)
            # 8 h = Thu 10:00-12:00 (2 h) + 13:30-18:00 (4 h 30 m) + Fri 09:00-10:30.
            assert following.due_at == shanghai(2026, 9, 18, 10, 30)
            assert ticket.due_at == following.due_at

        traveller.move_to(shanghai(2026, 9, 17, 11))
        with acting_for(app, desk.tenant) as session:
            ticket = session.get(Ticket, ticket_id)
            tickets.reply(ticket, "已提交退款。", user=staff(session, desk.agent), ip=None)
            session.commit()
            following = clocks_by_metric(ticket_id)[Metric.NEXT_RESPONSE]
            assert following.state == ClockState.MET and following.met_at == shanghai(2026, 9, 17, 11)
            assert ticket.due_at == shanghai(2026, 9, 24, 17)

        traveller.move_to(shanghai(2026, 9, 17, 15))
        with acting_for(app, desk.tenant) as session:
            ticket = session.get(Ticket, ticket_id)
            # The clocks' part only: resolved as a request that needed no refund after all.
            tickets.resolve(
                ticket,
                "您的问题已解决。",
                user=staff(session, desk.agent),
                ip=None,
                no_refund_reason="no_refund_requested",
            )
            session.commit()
            resolution = clocks_by_metric(ticket_id)[Metric.RESOLUTION]
            assert resolution.state == ClockState.MET and resolution.met_at == shanghai(2026, 9, 17, 15)
            assert ticket.due_at is None

        traveller.move_to(shanghai(2026, 9, 18, 10))
        with acting_for(app, desk.tenant) as session:
            ticket = session.get(Ticket, ticket_id)
            tickets.reopen(ticket, user=staff(session, desk.agent), ip=None)
            session.commit()
            resolution = clocks_by_metric(ticket_id)[Metric.RESOLUTION]
            assert resolution.state == ClockState.RUNNING and resolution.met_at is None
            # Resolved Thu 15:00 to Fri 10:00 is 3 h + 1 h of business time, not counted.
            assert resolution.pauses == [
                {
                    "from": "2026-09-17T07:00:00.000000Z",
                    "to": "2026-09-18T02:00:00.000000Z",
                    "seconds": 4 * 3600,
                    "why": "resolved",
                }
            ]
            # Thu 24 17:00 moved by 4 h: Thu 17:00-18:00 and Fri 09:00-12:00.
            assert resolution.due_at == shanghai(2026, 9, 25, 12)
            assert ticket.due_at == resolution.due_at

            tickets.withdraw_by_staff(ticket, user=staff(session, desk.agent), ip=None)
            session.commit()
            resolution = clocks_by_metric(ticket_id)[Metric.RESOLUTION]
            assert resolution.state == ClockState.STOPPED
            assert resolution.stopped_at == shanghai(2026, 9, 18, 10) and resolution.check_at is None
            assert ticket.due_at is None and ticket.warn_at is None

            def logged(action: str) -> list[list[str]]:
                return [metrics_in(event) for event in events(session, action, ticket_id)]

            assert logged("clock.started") == [["first_response", "resolution"], ["next_response"]]
            assert logged("clock.met") == [["first_response"], ["next_response"], ["resolution"]]
            assert logged("clock.resumed") == [["resolution"]]
            assert logged("clock.stopped") == [["resolution"]]

        # A request withdrawn before anyone answered stops every clock it had.
        untouched_id = submit_refund(app, desk.tenant, "n2")
        with acting_for(app, desk.tenant) as session:
            tickets.withdraw_by_customer(session.get(Ticket, untouched_id), ip=None)
            session.commit()
            stopped = clocks.clocks_of("ticket", untouched_id)
            assert {clock.metric for clock in stopped} == {Metric.FIRST_RESPONSE, Metric.RESOLUTION}
            assert all(
                clock.state == ClockState.STOPPED and clock.stopped_at == shanghai(2026, 9, 18, 10)
                for clock in stopped
            )
            assert [metrics_in(e) for e in events(session, "clock.stopped", untouched_id)] == [
                ["first_response", "resolution"]
            ]
    assert_audit_chain_verifies(runner, desk.tenant)


def test_an_answered_call_is_a_response_and_an_unanswered_one_is_not(app, runner, desk):
    def call(ticket_id: int, direction: str, outcome: str) -> None:
        with acting_for(app, desk.tenant) as session:
            agent = staff(session, desk.agent)
            tickets.log_call(
                session.get(Ticket, ticket_id),
                direction=direction,
                number="138 0013 8000",
                duration_seconds=0 if outcome == "no_answer" else 240,
                outcome=outcome,
                notes="",
                user=agent,
                ip=None,
            )
            session.commit()

    with travel(WEDNESDAY_5PM) as traveller:
        ticket_id = submit_refund(app, desk.tenant, "called")
        traveller.move_to(shanghai(2026, 9, 17, 9, 10))
        call(ticket_id, "outbound", "no_answer")
        with acting_for(app, desk.tenant):
            assert clocks_by_metric(ticket_id)[Metric.FIRST_RESPONSE].state == ClockState.RUNNING

        traveller.move_to(shanghai(2026, 9, 17, 9, 40))
        call(ticket_id, "outbound", "answered")
        with acting_for(app, desk.tenant) as session:
            first = clocks_by_metric(ticket_id)[Metric.FIRST_RESPONSE]
            assert first.state == ClockState.MET and first.met_at == shanghai(2026, 9, 17, 9, 40)
            assert session.get(Ticket, ticket_id).due_at == shanghai(2026, 9, 24, 17)  # resolution's

        traveller.move_to(shanghai(2026, 9, 17, 10))
        with acting_for(app, desk.tenant) as session:
            tickets.customer_reply(session.get(Ticket, ticket_id), "还没收到退款。", ip=None)
            session.commit()
        traveller.move_to(shanghai(2026, 9, 17, 10, 30))
        call(ticket_id, "inbound", "answered")  # the customer rang and got through
        with acting_for(app, desk.tenant) as session:
            following = clocks_by_metric(ticket_id)[Metric.NEXT_RESPONSE]
            assert following.state == ClockState.MET and following.met_at == shanghai(2026, 9, 17, 10, 30)
            met = [metrics_in(event) for event in events(session, "clock.met", ticket_id)]
            assert met == [["first_response"], ["next_response"]]
    assert_audit_chain_verifies(runner, desk.tenant)


def test_raising_the_priority_shortens_running_targets_and_lowering_it_never_lengthens_them(
    app, runner, desk
):
    with travel(WEDNESDAY_5PM) as traveller:
        ticket_id = submit_refund(app, desk.tenant, "urgent")
        traveller.move_to(shanghai(2026, 9, 16, 17, 20))
        with acting_for(app, desk.tenant) as session:
            ticket = session.get(Ticket, ticket_id)
            tickets.set_priority(ticket, "urgent", user=staff(session, desk.agent), ip=None)
            session.commit()
            by_metric = clocks_by_metric(ticket_id)
            first, resolution = by_metric[Metric.FIRST_RESPONSE], by_metric[Metric.RESOLUTION]
            # Rule 1 (urgent): 60 min and 9 h, counted from receipt on the same calendar.
            assert (first.target, first.rule, first.due_at) == (60, "1", shanghai(2026, 9, 16, 18))
            # Wed 17:00-18:00, Thu 09:00-12:00 and 13:30-18:00 (8 h 30 min), Fri 09:00-09:30.
            assert (resolution.target, resolution.rule) == (9 * 60, "1")
            assert resolution.due_at == shanghai(2026, 9, 18, 9, 30)
            assert ticket.due_at == shanghai(2026, 9, 16, 18)
            assert ticket.respond_by == shanghai(2026, 9, 17, 17, 30)  # the receipt's promise stays

        traveller.move_to(shanghai(2026, 9, 16, 17, 30))
        with acting_for(app, desk.tenant) as session:
            ticket = session.get(Ticket, ticket_id)
            tickets.set_priority(ticket, "low", user=staff(session, desk.agent), ip=None)
            session.commit()
            lowered = clocks_by_metric(ticket_id)
            assert lowered[Metric.FIRST_RESPONSE].due_at == shanghai(2026, 9, 16, 18)
            assert lowered[Metric.RESOLUTION].due_at == shanghai(2026, 9, 18, 9, 30)
            [retargeted] = events(session, "clock.retargeted", ticket_id)
            assert metrics_in(retargeted) == ["first_response", "resolution"]
            assert [clock["target"] for clock in retargeted.data["clocks"]] == [60, 9 * 60]
    assert_audit_chain_verifies(runner, desk.tenant)


def test_a_merged_duplicate_has_its_clocks_stopped_not_met(app, desk):
    with travel(WEDNESDAY_5PM) as traveller:
        kept_id = submit_refund(app, desk.tenant, "n1")
        duplicate_id = submit_refund(app, desk.tenant, "n2")
        traveller.move_to(shanghai(2026, 9, 17, 10))
        with acting_for(app, desk.tenant) as session:
            kept, duplicate = session.get(Ticket, kept_id), session.get(Ticket, duplicate_id)
            tickets.merge(duplicate, kept, user=staff(session, desk.agent), ip=None)
            session.commit()
            # Nobody answered or resolved the duplicate: the request went into the other one.
            assert {(c.metric, c.state) for c in clocks.clocks_of("ticket", duplicate_id)} == {
                (Metric.FIRST_RESPONSE, ClockState.STOPPED),
                (Metric.RESOLUTION, ClockState.STOPPED),
            }
            assert events(session, "clock.met", duplicate_id) == []
            assert {c.state for c in clocks.clocks_of("ticket", kept_id)} == {ClockState.RUNNING}


# --- versions ----------------------------------------------------------------------------


def test_a_rule_without_a_resolution_target_still_times_the_next_response(app, desk):
    with travel(WEDNESDAY_5PM) as traveller:
        with acting_for(app, desk.tenant) as session:
            answers_only = Policy((Rule(first_response=120, next_response=60),))
            versions.save(ConfigKind.SLA_POLICY, "default", answers_only.to_json(), actor=OPERATOR)
            session.commit()
        ticket_id = submit_refund(app, desk.tenant, "no-resolution")
        traveller.move_to(shanghai(2026, 9, 17, 9, 30))
        with acting_for(app, desk.tenant) as session:
            ticket = session.get(Ticket, ticket_id)
            tickets.reply(ticket, "我们正在核实。", user=staff(session, desk.agent), ip=None)
            tickets.customer_reply(ticket, "请尽快。", ip=None)
            session.commit()
            following = clocks_by_metric(ticket_id)[Metric.NEXT_RESPONSE]
            assert following.state == ClockState.RUNNING and following.target == 60
            assert following.due_at == shanghai(2026, 9, 17, 10, 30)
            assert Metric.RESOLUTION not in clocks_by_metric(ticket_id)


def test_a_new_policy_applies_to_new_tickets_while_existing_ones_keep_theirs(app, runner, desk):
    with travel(WEDNESDAY_5PM) as traveller:
        old_id = submit_refund(app, desk.tenant, "n1")
        with acting_for(app, desk.tenant) as session:
            old_policy = versions.current(ConfigKind.SLA_POLICY)
            faster = Policy((Rule(first_response=120, next_response=60, resolution=600),))
            new_policy = versions.save(
                ConfigKind.SLA_POLICY, "default", faster.to_json(), actor=OPERATOR, user_id=desk.admin.id
            )
            session.commit()
            assert new_policy.version == old_policy.version + 1
            assert [e.data["version"] for e in events(session, "sla_policy.version_created")] == [1, 2]
        new_id = submit_refund(app, desk.tenant, "n2")

        with acting_for(app, desk.tenant) as session:
            old, new = clocks_by_metric(old_id), clocks_by_metric(new_id)
            assert {c.config_version_id for c in old.values()} == {old_policy.id}
            assert old[Metric.FIRST_RESPONSE].due_at == shanghai(2026, 9, 17, 17, 30)
            assert old[Metric.RESOLUTION].due_at == shanghai(2026, 9, 24, 17)
            assert {c.config_version_id for c in new.values()} == {new_policy.id}
            # 2 h = Wed 17:00-18:00 + Thu 09:00-10:00; 10 h = 1 h + Thu 7 h 30 m + Fri 1 h 30 m.
            assert new[Metric.FIRST_RESPONSE].due_at == shanghai(2026, 9, 17, 10)
            assert new[Metric.RESOLUTION].due_at == shanghai(2026, 9, 18, 10, 30)
            assert session.get(Ticket, old_id).respond_by == shanghai(2026, 9, 17, 17, 30)
            assert session.get(Ticket, new_id).respond_by == shanghai(2026, 9, 17, 10)

        # Later events on the old ticket still follow the policy it started under.
        traveller.move_to(shanghai(2026, 9, 17, 9))
        with acting_for(app, desk.tenant) as session:
            ticket = session.get(Ticket, old_id)
            tickets.reply(ticket, "我们正在核实。", user=staff(session, desk.agent), ip=None)
            session.commit()
        traveller.move_to(shanghai(2026, 9, 17, 9, 30))
        with acting_for(app, desk.tenant) as session:
            tickets.customer_reply(session.get(Ticket, old_id), "还有一个问题。", ip=None)
            session.commit()
            following = clocks_by_metric(old_id)[Metric.NEXT_RESPONSE]
            assert (following.config_version_id, following.target) == (old_policy.id, 480)
            # 8 h = Thu 09:30-12:00 (2 h 30 m) + 13:30-18:00 (4 h 30 m) + Fri 09:00-10:00.
            assert following.due_at == shanghai(2026, 9, 18, 10)
    assert_audit_chain_verifies(runner, desk.tenant)


def test_a_calendar_change_leaves_running_clocks_on_the_calendar_they_started_with(app, runner, desk):
    with travel(WEDNESDAY_5PM) as traveller:
        old_id = submit_refund(app, desk.tenant, "n1")
        with acting_for(app, desk.tenant) as session:
            before = versions.calendar(DEFAULT_CALENDAR)
            after = calendars.add_dates(
                DEFAULT_CALENDAR, holidays={date(2026, 9, 17): "Desk offsite"}, actor=OPERATOR
            )
            session.commit()
            assert after.version == before.version + 1
            created = events(session, "calendar.version_created")
            assert created[-1].data["version"] == after.version and created[-1].data["previous"] == 2
        new_id = submit_refund(app, desk.tenant, "n2")

        with acting_for(app, desk.tenant) as session:
            old, new = clocks_by_metric(old_id), clocks_by_metric(new_id)
            assert {c.calendar_version_id for c in old.values()} == {before.id}
            assert {c.calendar_version_id for c in new.values()} == {after.id}
            assert old[Metric.FIRST_RESPONSE].due_at == shanghai(2026, 9, 17, 17, 30)
            # Thursday is closed on the new calendar: Wed 1 h + Fri 09:00-12:00, 13:30-17:30.
            assert new[Metric.FIRST_RESPONSE].due_at == shanghai(2026, 9, 18, 17, 30)

        # Both wait for their customer from Wed 17:30 to Fri 09:30; each counts the wait
        # on its own calendar.
        traveller.move_to(shanghai(2026, 9, 16, 17, 30))
        with acting_for(app, desk.tenant) as session:
            for ticket_id in (old_id, new_id):
                ticket = session.get(Ticket, ticket_id)
                tickets.request_information(ticket, "请提供账号。", user=staff(session, desk.agent), ip=None)
            session.commit()
        traveller.move_to(shanghai(2026, 9, 18, 9, 30))
        with acting_for(app, desk.tenant) as session:
            for ticket_id in (old_id, new_id):
                tickets.customer_reply(session.get(Ticket, ticket_id), "账号是 1234。", ip=None)
            session.commit()
            old_resolution = clocks_by_metric(old_id)[Metric.RESOLUTION]
            new_resolution = clocks_by_metric(new_id)[Metric.RESOLUTION]
            # Old calendar: 30 m + Thursday's 7 h 30 m + 30 m. New: 30 m + 30 m.
            assert old_resolution.paused_seconds == (30 + 450 + 30) * 60
            assert new_resolution.paused_seconds == (30 + 30) * 60
            # Old: Thu 24 17:00 + 8 h 30 m = Thu 17:00-18:00 + all of Fri 25.
            assert old_resolution.due_at == shanghai(2026, 9, 25, 18)
            # New: 45 h from Wed 17:00 skipping Thu 17 ends Fri 25 17:00, + 1 h.
            assert new_resolution.due_at == shanghai(2026, 9, 25, 18)
    assert_audit_chain_verifies(runner, desk.tenant)


# --- regulatory deadlines ----------------------------------------------------------------

CHINESE_DEADLINES = {
    "calendar": DEFAULT_CALENDAR,
    "assignments": [
        {"kind": "complaint", "channel": "*", "profile": "cn-telecom"},
        {"kind": "*", "channel": "regulator_referral", "profile": "cn-12315-odr"},
    ],
    "custom": [],
}


def open_by_staff(session, user: StaffUser, kind: str, channel: str, **customer) -> Ticket:
    details = {"name": "李雷", "phone": "13900139000", "locale": "zh_CN", **customer}
    return tickets.open_ticket(
        customer=tickets.CustomerDetails(**details),
        kind=kind,
        channel=channel,
        priority="normal",
        description="宽带一直断线。",
        user=staff(session, user),
        ip=None,
    )


def test_regulatory_deadlines_count_from_receipt_and_never_pause(app, runner, desk):
    with acting_for(app, desk.tenant) as session:
        calendars.import_china(DEFAULT_CALENDAR, 2026, actor=OPERATOR)
        rules_version = versions.save(ConfigKind.DEADLINES, "default", CHINESE_DEADLINES, actor=OPERATOR)
        session.commit()
        rules_id = rules_version.id
    # 07:30 in Shanghai is 23:30 UTC the day before: the local date is the day of receipt.
    received = shanghai(2026, 9, 30, 7, 30)
    with travel(received) as traveller:
        with acting_for(app, desk.tenant) as session:
            complaint = open_by_staff(session, desk.agent, "complaint", "phone")
            referral = open_by_staff(session, desk.agent, "refund", "regulator_referral")
            inquiry = open_by_staff(session, desk.agent, "inquiry", "email")
            session.commit()
            ids = complaint.id, referral.id, inquiry.id

            telecom = clocks_by_metric(complaint.id)[Metric.REGULATORY_FINAL]
            assert (telecom.rule, telecom.unit, telecom.target) == ("cn-telecom", "calendar_days", 15)
            assert telecom.config_version_id == rules_id and telecom.alerts
            # 15 days after 30 Sep is 15 Oct; the deadline is the end of that day, holidays
            # or not.
            assert telecom.due_at == shanghai(2026, 10, 16)
            # 80 % of the 376 h 30 m from receipt to the deadline.
            assert telecom.warn_at == received + timedelta(hours=301, minutes=12)

            odr = clocks_by_metric(referral.id)[Metric.REGULATORY_FINAL]
            assert (odr.rule, odr.unit, odr.target) == ("cn-12315-odr", "business_days", 10)
            # Working days after 30 Sep: 1-7 Oct is National Day; 8, 9, Sat 10 (a make-up
            # working day), 12-16, 19 and 20 Oct make ten.
            assert odr.due_at == shanghai(2026, 10, 21)
            assert Metric.REGULATORY_FINAL not in clocks_by_metric(inquiry.id)
            assert "regulatory_final" in metrics_in(events(session, "clock.started", complaint.id)[0])

        traveller.move_to(shanghai(2026, 9, 30, 10))
        with acting_for(app, desk.tenant) as session:
            for ticket_id in ids[:2]:
                ticket = session.get(Ticket, ticket_id)
                tickets.request_information(ticket, "请提供账单。", user=staff(session, desk.agent), ip=None)
            session.commit()
            for ticket_id, due in zip(ids[:2], (shanghai(2026, 10, 16), shanghai(2026, 10, 21)), strict=True):
                by_metric = clocks_by_metric(ticket_id)
                regulatory = by_metric[Metric.REGULATORY_FINAL]
                assert by_metric[Metric.RESOLUTION].state == ClockState.PAUSED
                assert regulatory.state == ClockState.RUNNING and regulatory.due_at == due
                assert regulatory.paused_seconds == 0 and regulatory.pauses == []
                # While the customer is asked, the regulator's deadline is the one that runs.
                assert session.get(Ticket, ticket_id).due_at == due
                assert [metrics_in(e) for e in events(session, "clock.paused", ticket_id)] == [["resolution"]]

        traveller.move_to(shanghai(2026, 10, 9, 11))
        with acting_for(app, desk.tenant) as session:
            ticket = session.get(Ticket, ids[0])
            tickets.resolve(ticket, "已修复线路。", user=staff(session, desk.agent), ip=None)
            session.commit()
            telecom = clocks_by_metric(ids[0])[Metric.REGULATORY_FINAL]
            assert telecom.state == ClockState.MET and telecom.met_at == shanghai(2026, 10, 9, 11)
    assert_audit_chain_verifies(runner, desk.tenant)


def test_the_fca_summary_marker_is_reported_but_never_alerts(app, runner, make_tenant, make_user):
    tenant = make_tenant(timezone="Europe/London", currency="GBP")
    agent, manager = make_user(tenant, "agent"), make_user(tenant, "manager")
    with acting_for(app, tenant) as session:
        versions.save(
            ConfigKind.DEADLINES,
            "default",
            {"assignments": [{"kind": "complaint", "channel": "*", "profile": "uk-fca"}]},
            actor=OPERATOR,
        )
        session.commit()
    received = datetime(2026, 9, 16, 10, tzinfo=LONDON)  # a Wednesday, in summer time
    with travel(received) as traveller:
        with acting_for(app, tenant) as session:
            ticket = open_by_staff(
                session, agent, "complaint", "email", name="Jane Doe", phone=None, email="jane@example.test"
            )
            tickets.assign(ticket, agent.id, user=staff(session, manager), ip=None)
            session.commit()
            ticket_id = ticket.id
            by_metric = clocks_by_metric(ticket_id)
            summary, final = by_metric[Metric.REGULATORY_SUMMARY], by_metric[Metric.REGULATORY_FINAL]
            assert summary.rule == final.rule == "uk-fca"
            # Three business days after Wednesday: Thu, Fri, Mon; due at the end of Monday.
            assert summary.due_at == datetime(2026, 9, 22, tzinfo=LONDON)
            assert not summary.alerts and summary.warn_at is None and summary.check_at is None
            # Eight weeks: 56 days after 16 Sep is 11 Nov, after the clocks went back.
            assert final.due_at == datetime(2026, 11, 12, tzinfo=LONDON)
            assert final.check_at is not None
            # The queue never sorts by the marker.
            assert session.get(Ticket, ticket_id).due_at == by_metric[Metric.FIRST_RESPONSE].due_at

        traveller.move_to(datetime(2026, 9, 23, 9, 30, tzinfo=LONDON))  # the marker's day has passed
        run_sweep(app)
        run_sweep(app)
        with acting_for(app, tenant) as session:
            summary = clocks_by_metric(ticket_id)[Metric.REGULATORY_SUMMARY]
            assert summary.breached_at is None and summary.warned_at is None
            assert notified(session, summary.id) == set()
            warned_or_breached = events(session, "clock.warned") + events(session, "clock.breached")
            assert summary.id not in {event.data["clock_id"] for event in warned_or_breached}
            # The same sweep did alert on the ticket's first-response clock.
            first = clocks_by_metric(ticket_id)[Metric.FIRST_RESPONSE]
            assert notified(session, first.id) == {(agent.id, "breached"), (manager.id, "breached")}

            tickets.resolve(session.get(Ticket, ticket_id), "Resolved.", user=staff(session, agent), ip=None)
            session.commit()
            summary = clocks_by_metric(ticket_id)[Metric.REGULATORY_SUMMARY]
            # Reported afterwards: met 1 day 9 h 30 m after the marker's day ended.
            assert summary.state == ClockState.MET
            assert summary.met_at - summary.due_at == timedelta(days=1, hours=9, minutes=30)
    assert_audit_chain_verifies(runner, tenant)


# --- the sweep ---------------------------------------------------------------------------


def test_a_breach_is_recorded_once_at_its_due_time_and_tells_the_people_concerned(app, runner, desk):
    with travel(WEDNESDAY_5PM) as traveller:
        ticket_id = submit_refund(app, desk.tenant, "n1")
        with acting_for(app, desk.tenant) as session:
            tickets.assign(
                session.get(Ticket, ticket_id), desk.agent.id, user=staff(session, desk.admin), ip=None
            )
            session.commit()

        traveller.move_to(shanghai(2026, 9, 17, 17, 30, 30))
        assert run_sweep(app).breached >= 1
        with acting_for(app, desk.tenant) as session:
            first = clocks_by_metric(ticket_id)[Metric.FIRST_RESPONSE]
            assert first.breached_at == first.due_at == shanghai(2026, 9, 17, 17, 30)
            # Past its warning too, but one message says it all: the warning is claimed, not sent.
            assert first.warned_at == first.warn_at and events(session, "clock.warned", ticket_id) == []
            assert first.state == ClockState.RUNNING and first.check_at is None
            breached = events(session, "clock.breached", ticket_id)
            assert [event.data for event in breached] == [
                {
                    "clock_id": first.id,
                    "metric": "first_response",
                    "at": "2026-09-17T09:30:00.000000Z",
                    "detected_at": "2026-09-17T09:30:30.000000Z",
                    "detected_by": "sweep",
                    "due_at": "2026-09-17T09:30:00.000000Z",
                }
            ]
            assert breached[0].actor_kind == "system"
            # The assignee and each manager and admin; not the auditor.
            assert notified(session) == {
                (desk.agent.id, "breached"),
                (desk.manager.id, "breached"),
                (desk.admin.id, "breached"),
            }
            mail = staff_mail(session, desk)
            assert sorted(m.to_address for m in mail) == sorted(
                user.email for user in (desk.agent, desk.manager, desk.admin)
            )
            ticket = session.get(Ticket, ticket_id)
            for message in mail:
                assert message.status == OutboxStatus.HELD and message.ticket_id == ticket_id
                assert message.subject == f"[{ticket.reference}] Deadline missed: First response"
            actions = [
                (e.data["action"], e.data["user_ids"]) for e in events(session, "sla.action", ticket_id)
            ]
            assert actions == [
                ("notify_breached", [desk.agent.id]),
                ("notify_breached", sorted(desk.managers)),
            ]
            # The clock runs on until met: the queue still shows it as the overdue deadline.
            assert ticket.due_at == first.due_at
            counts = (len(session.scalars(select(AuditEvent)).all()), len(mail), len(notified(session)))

        traveller.move_to(shanghai(2026, 9, 17, 17, 31, 30))
        run_sweep(app)
        run_sweep(app)
        with acting_for(app, desk.tenant) as session:
            assert (len(session.scalars(select(AuditEvent)).all()), len(staff_mail(session, desk))) == counts[
                :2
            ]
            assert len(session.scalars(select(Notification)).all()) == counts[2]

        traveller.move_to(shanghai(2026, 9, 17, 18, 40))
        with acting_for(app, desk.tenant) as session:
            tickets.reply(
                session.get(Ticket, ticket_id), "抱歉久等。", user=staff(session, desk.agent), ip=None
            )
            session.commit()
            first = clocks_by_metric(ticket_id)[Metric.FIRST_RESPONSE]
            # Met late, by 1 h 10 m: both facts stay.
            assert first.state == ClockState.MET and first.met_at == shanghai(2026, 9, 17, 18, 40)
            assert first.breached_at == shanghai(2026, 9, 17, 17, 30)
    assert_audit_chain_verifies(runner, desk.tenant)


def test_when_the_clock_jumps_a_breach_is_recorded_once_and_the_chain_says_time_went_back(app, runner, desk):
    """Fault drill 6 (issue 16): the server's clock is set back an hour past a breach, then
    jumps forward a day. The sweep records the breach once. An event recorded meanwhile
    carries the earlier wall-clock time: the chain keeps it as the clock said (its order
    is ``seq``'s), never moves ``chained_at`` back, and ``audit verify`` says so."""
    with travel(WEDNESDAY_5PM) as traveller:
        ticket_id = submit_refund(app, desk.tenant, "n1")
        traveller.move_to(shanghai(2026, 9, 17, 18, 0))  # half an hour past the first response's due time
        run_sweep(app)
        traveller.move_to(shanghai(2026, 9, 17, 17, 0))  # set back an hour: before the due time again
        run_sweep(app)
        with acting_for(app, desk.tenant) as session:
            tickets.assign(
                session.get(Ticket, ticket_id), desk.agent.id, user=staff(session, desk.admin), ip=None
            )
            session.commit()
        traveller.move_to(shanghai(2026, 9, 18, 18, 0))  # and on a day
        run_sweep(app)

    with acting_for(app, desk.tenant) as session:
        first = clocks_by_metric(ticket_id)[Metric.FIRST_RESPONSE]
        assert first.breached_at == first.due_at == shanghai(2026, 9, 17, 17, 30)
        assert len(events(session, "clock.breached", ticket_id)) == 1
        rows = session.execute(
            select(AuditEvent.action, AuditEvent.occurred_at, AuditEvent.chained_at).order_by(AuditEvent.seq)
        ).all()
    stepped_back = [
        later.action for earlier, later in itertools.pairwise(rows) if later.occurred_at < earlier.occurred_at
    ]
    # The desk was set up today, in real time, before the drill travelled to September:
    # that is the first step back; the assignment at the set-back clock is the second.
    assert stepped_back == ["customer.created", "ticket.assigned"]
    chained = [row.chained_at for row in rows]
    assert chained == sorted(chained)
    result = runner.invoke(args=["audit", "verify", "--tenant", desk.tenant.slug])
    assert result.exit_code == 0 and result.output.startswith("ok: "), result.output
    assert "note: 2 events record an earlier time than the event before them, by up to" in result.output
    assert "a step of minutes or more means a server's clock was set back" in result.output


def test_a_warning_goes_to_the_assignee_or_else_to_the_managers(app, runner, desk):
    with travel(WEDNESDAY_5PM) as traveller:
        unassigned_id = submit_refund(app, desk.tenant, "n1")
        assigned_id = submit_refund(app, desk.tenant, "n2")
        with acting_for(app, desk.tenant) as session:
            ticket = session.get(Ticket, assigned_id)
            tickets.assign(ticket, desk.agent.id, user=staff(session, desk.admin), ip=None)
            session.commit()

        traveller.move_to(shanghai(2026, 9, 17, 15, 54, 30))  # warning 15:54, due 17:30
        run_sweep(app)
        with acting_for(app, desk.tenant) as session:
            for ticket_id in (unassigned_id, assigned_id):
                first = clocks_by_metric(ticket_id)[Metric.FIRST_RESPONSE]
                assert first.warned_at == shanghai(2026, 9, 17, 15, 54) and first.breached_at is None
                assert first.check_at == first.due_at  # next: the breach
                [warned] = events(session, "clock.warned", ticket_id)
                assert warned.data["at"] == "2026-09-17T07:54:00.000000Z"
                assert warned.data["detected_at"] == "2026-09-17T07:54:30.000000Z"
            unassigned = clocks_by_metric(unassigned_id)[Metric.FIRST_RESPONSE]
            assigned = clocks_by_metric(assigned_id)[Metric.FIRST_RESPONSE]
            assert notified(session, assigned.id) == {(desk.agent.id, "warned")}
            assert notified(session, unassigned.id) == {
                (desk.manager.id, "warned"),
                (desk.admin.id, "warned"),
            }
            mail = staff_mail(session, desk)
            assert sorted(m.to_address for m in mail) == sorted(
                [desk.agent.email, desk.manager.email, desk.admin.email]
            )
            assert all("Deadline approaching: First response" in m.subject for m in mail)
            assert events(session, "clock.breached") == []
    assert_audit_chain_verifies(runner, desk.tenant)


def test_a_breach_is_detected_within_a_minute_of_its_due_time(app, desk):
    received = shanghai(2026, 9, 16, 17, 0, 20)
    due = shanghai(2026, 9, 17, 17, 30, 20)  # 8 business hours later, off the minute
    with travel(received) as traveller:
        ticket_id = submit_refund(app, desk.tenant, "n1")
        # The scheduler runs the sweep at the start of each minute.
        minute, detected = shanghai(2026, 9, 17, 17, 27), None
        for _ in range(10):
            traveller.move_to(minute)
            run_sweep(app)
            with acting_for(app, desk.tenant):
                first = clocks_by_metric(ticket_id)[Metric.FIRST_RESPONSE]
                assert first.due_at == due
                if first.breached_at is not None:
                    detected = minute
                    break
            minute += timedelta(minutes=1)
        assert detected == shanghai(2026, 9, 17, 17, 31)  # the first sweep at or after 17:30:20
        with acting_for(app, desk.tenant) as session:
            [breached] = events(session, "clock.breached", ticket_id)
            lag = instant(breached.data["detected_at"]) - instant(breached.data["due_at"])
            assert timedelta(0) < lag <= timedelta(seconds=60)
            assert instant(breached.data["at"]) == due


def test_breach_actions_raise_the_priority_and_hand_the_ticket_to_the_managers(app, runner, desk):
    escalating = Policy(
        (
            Rule(
                first_response=60,
                resolution=600,
                actions=(Action.NOTIFY_MANAGERS, Action.RAISE_PRIORITY, Action.REASSIGN),
                reassign_to=MANAGERS_QUEUE,
            ),
        )
    )
    with acting_for(app, desk.tenant) as session:
        versions.save(ConfigKind.SLA_POLICY, "default", escalating.to_json(), actor=OPERATOR)
        session.commit()
    with travel(WEDNESDAY_5PM) as traveller:
        ticket_id = submit_refund(app, desk.tenant, "n1")
        with acting_for(app, desk.tenant) as session:
            tickets.assign(
                session.get(Ticket, ticket_id), desk.agent.id, user=staff(session, desk.admin), ip=None
            )
            session.commit()

        traveller.move_to(shanghai(2026, 9, 16, 18, 0, 30))  # first response: 1 h, due 18:00
        run_sweep(app)
        with acting_for(app, desk.tenant) as session:
            ticket = session.get(Ticket, ticket_id)
            assert ticket.priority == Priority.HIGH
            assert ticket.assignee_id is None and ticket.needs_manager
            first = clocks_by_metric(ticket_id)[Metric.FIRST_RESPONSE]
            actions = [
                {key: value for key, value in event.data.items() if key != "clock_id"}
                for event in events(session, "sla.action", ticket_id)
            ]
            # The ticket's changes first, then who was told (one event per audience).
            assert actions == [
                {"action": "raise_priority", "before": "normal", "after": "high"},
                {"action": "reassign", "before": desk.agent.id, "after": None, "to": "managers"},
                {"action": "notify_breached", "to": "managers", "user_ids": sorted(desk.managers)},
            ]
            assert {e.data["clock_id"] for e in events(session, "sla.action", ticket_id)} == {first.id}
            assert notified(session) == {(desk.manager.id, "breached"), (desk.admin.id, "breached")}

        # Resolution (10 h: Wed 1 h, Thu 7 h 30 m, Fri 09:00-10:30) breaches too: one step more.
        traveller.move_to(shanghai(2026, 9, 18, 10, 30, 30))
        run_sweep(app)
        with acting_for(app, desk.tenant) as session:
            assert session.get(Ticket, ticket_id).priority == Priority.URGENT
            raised = [
                e.data
                for e in events(session, "sla.action", ticket_id)
                if e.data["action"] == "raise_priority"
            ]
            assert [(r["before"], r["after"]) for r in raised] == [("normal", "high"), ("high", "urgent")]
    assert_audit_chain_verifies(runner, desk.tenant)


def sweep_thread(app, errors: list[BaseException]) -> threading.Thread:
    """A sweep in a thread of its own, as a second worker would run it."""

    def sweep_now() -> None:
        try:
            with app.app_context():
                sweep.sweep()
        except BaseException as error:  # reported by the test, not lost in the thread
            errors.append(error)

    return threading.Thread(target=sweep_now)


def race_two_sweeps(app, tenant: CurrentTenant, clock_ids: list[int]) -> None:
    """Run two sweeps at once. A transaction holds the clocks' rows, as a staff action of
    the tenant in progress would, until both sweeps wait to claim the first clock: the
    race happens every time, not by luck of timing."""
    errors: list[BaseException] = []
    threads = [sweep_thread(app, errors) for _ in range(2)]
    with app.app_context(), tenant_context(tenant), db.engine.connect() as holder:
        held = holder.begin()
        holder.execute(text("SELECT id FROM clocks WHERE id = ANY(:ids) FOR UPDATE"), {"ids": clock_ids})
        for thread in threads:
            thread.start()
        both_waited = waiting_for_locks(2)
        held.commit()
    for thread in threads:
        thread.join()
    assert both_waited, "the two sweeps never both waited for the clock"
    assert errors == []


@requires_postgres
@pytest.mark.postgres
def test_two_sweeps_at_once_record_each_warning_and_breach_once(app, runner, desk):
    with travel(WEDNESDAY_5PM) as traveller:
        ticket_ids = []
        for n in range(4):  # a second apart, so both sweeps take the clocks in one order
            traveller.move_to(WEDNESDAY_5PM + timedelta(seconds=n))
            ticket_ids.append(submit_refund(app, desk.tenant, f"n{n}"))
        with acting_for(app, desk.tenant) as session:
            for ticket_id in ticket_ids[:2]:
                tickets.assign(
                    session.get(Ticket, ticket_id), desk.agent.id, user=staff(session, desk.admin), ip=None
                )
            session.commit()
            clock_ids = [clocks_by_metric(t)[Metric.FIRST_RESPONSE].id for t in ticket_ids]

        traveller.move_to(shanghai(2026, 9, 17, 15, 54, 30))  # past the warnings
        race_two_sweeps(app, desk.tenant, clock_ids)
        traveller.move_to(shanghai(2026, 9, 17, 17, 30, 30))  # past the due times
        race_two_sweeps(app, desk.tenant, clock_ids)

    with acting_for(app, desk.tenant) as session:
        for n, ticket_id in enumerate(ticket_ids):
            first = clocks_by_metric(ticket_id)[Metric.FIRST_RESPONSE]
            assert first.warned_at == first.warn_at == shanghai(2026, 9, 17, 15, 54, n)
            assert first.breached_at == first.due_at == shanghai(2026, 9, 17, 17, 30, n)
            assert len(events(session, "clock.warned", ticket_id)) == 1
            assert len(events(session, "clock.breached", ticket_id)) == 1
        # Warnings: the agent for the two assigned, both managers for the two others.
        # Breaches: the agent for the two assigned, both managers for all four.
        # Each person gets one email per sweep that found something for them, listing it all.
        mail = staff_mail(session, desk)
        for user, near, missed in ((desk.agent, 2, 2), (desk.manager, 2, 4), (desk.admin, 2, 4)):
            bodies = "\n".join(m.body for m in mail if m.to_address == user.email)
            assert bodies.count("deadline is near") == near, user.email
            assert bodies.count("deadline was missed") == missed, user.email
        assert not [m for m in mail if m.to_address == desk.auditor.email]
        told = [e.data for e in events(session, "sla.action")]
        assert sum(len(d["user_ids"]) for d in told if d["action"] == "notify_warned") == 6
        assert sum(len(d["user_ids"]) for d in told if d["action"] == "notify_breached") == 10
        assert len(session.scalars(select(Notification)).all()) == 16
    assert_audit_chain_verifies(runner, desk.tenant)


@requires_postgres
@pytest.mark.postgres
def test_a_late_reply_committed_while_the_sweep_waits_for_the_clock_is_breached_once(app, runner, desk):
    with travel(WEDNESDAY_5PM) as traveller:
        ticket_id = submit_refund(app, desk.tenant, "n1")
        traveller.move_to(shanghai(2026, 9, 17, 17, 30, 30))
        errors: list[BaseException] = []
        sweeper = sweep_thread(app, errors)
        with acting_for(app, desk.tenant) as session:
            # The agent's late answer is written but not yet committed when the sweep comes.
            tickets.reply(
                session.get(Ticket, ticket_id), "抱歉久等。", user=staff(session, desk.agent), ip=None
            )
            session.flush()
            sweeper.start()
            waited = waiting_for_locks(1)
            session.commit()
        sweeper.join()
        assert waited, "the sweep never waited for the clock"
        assert errors == []

    with acting_for(app, desk.tenant) as session:
        by_metric = clocks_by_metric(ticket_id)
        first = by_metric[Metric.FIRST_RESPONSE]
        assert first.state == ClockState.MET and first.met_at == shanghai(2026, 9, 17, 17, 30, 30)
        # Answered 30 s late: the reply recorded the breach at the due time, and the sweep,
        # let through once the reply committed, found nothing left to record or tell.
        assert first.breached_at == first.due_at and first.met_at - first.due_at == timedelta(seconds=30)
        [breach] = events(session, "clock.breached")
        assert breach.data["detected_by"] == "met" and breach.data["at"] == breach.data["due_at"]
        assert notified(session) == {(user_id, "breached") for user_id in desk.managers}
        # The queue shows the deadline still running, not the answered one.
        assert session.get(Ticket, ticket_id).due_at == by_metric[Metric.RESOLUTION].due_at
    assert_audit_chain_verifies(runner, desk.tenant)


# --- tenants -----------------------------------------------------------------------------


def test_one_tenants_clocks_sweep_and_versions_never_touch_another(app, desk, make_tenant, make_user):
    other = make_tenant(timezone="Asia/Shanghai")
    other_agent, other_manager = make_user(other, "agent"), make_user(other, "manager")

    def alerted(session) -> set[str]:
        return {m.to_address for m in session.scalars(select(OutboxMessage)) if "Deadline" in m.subject}

    with travel(WEDNESDAY_5PM) as traveller:
        other_id = submit_refund(app, other, "n1")
        with acting_for(app, other) as session:
            ticket = session.get(Ticket, other_id)
            tickets.assign(ticket, other_agent.id, user=staff(session, other_manager), ip=None)
            session.commit()
            other_clock = clocks_by_metric(other_id)[Metric.FIRST_RESPONSE]
            other_clock_id = other_clock.id
            # The other desk keeps the default hours (09:00-18:00): Wed 1 h + Thu 09:00-16:00.
            assert other_clock.due_at == shanghai(2026, 9, 17, 16)
        # Ours arrives Thursday morning: it warns at 16:54 (6 h 24 m) and is due Fri 09:30.
        traveller.move_to(shanghai(2026, 9, 17, 9))
        own_id = submit_refund(app, desk.tenant, "n1")

        traveller.move_to(shanghai(2026, 9, 17, 16, 0, 30))  # only the other desk's clock is due
        run_sweep(app)
        with acting_for(app, other) as session:
            assert notified(session) == {(other_agent.id, "breached"), (other_manager.id, "breached")}
            assert alerted(session) == {other_agent.email, other_manager.email}
        with acting_for(app, desk.tenant) as session:
            assert notified(session) == set() and staff_mail(session, desk) == []
            assert events(session, "clock.breached") == events(session, "sla.action") == []

        traveller.move_to(shanghai(2026, 9, 17, 16, 54, 30))  # now only ours: a warning
        run_sweep(app)
        with acting_for(app, desk.tenant) as session:
            assert notified(session) == {(desk.manager.id, "warned"), (desk.admin.id, "warned")}
            assert alerted(session) == {desk.manager.email, desk.admin.email}
        with acting_for(app, other) as session:
            assert notified(session) == {(other_agent.id, "breached"), (other_manager.id, "breached")}
            assert events(session, "clock.warned") == []

    with acting_for(app, desk.tenant) as session:
        assert clocks.clocks_of("ticket", other_id) == []
        assert session.get(Clock, other_clock_id) is None
        assert session.get(Ticket, other_id) is None
        assert {c.subject_id for c in session.scalars(select(Clock))} == {own_id}
        policy = versions.save(
            ConfigKind.SLA_POLICY,
            "default",
            Policy((Rule(first_response=30, resolution=60),)).to_json(),
            actor=OPERATOR,
        )
        session.commit()
        assert policy.version == 2
    with acting_for(app, other) as session:
        assert versions.current(ConfigKind.SLA_POLICY).version == 1
        assert [e.data["version"] for e in events(session, "sla_policy.version_created")] == [1]
        assert {c.subject_id for c in session.scalars(select(Clock))} == {other_id}


# --- the operator commands ---------------------------------------------------------------

YEAR_END_ICS = b"""BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Ledgerdesk tests//EN
BEGIN:VEVENT
UID:year-end@example.test
DTSTAMP:20260101T000000Z
DTSTART;VALUE=DATE:20261231
DTEND;VALUE=DATE:20270102
SUMMARY:Year end closure
END:VEVENT
BEGIN:VEVENT
UID:meeting@example.test
DTSTAMP:20260101T000000Z
DTSTART:20261215T100000Z
DTEND:20261215T110000Z
SUMMARY:A timed meeting is not a holiday
END:VEVENT
END:VCALENDAR
"""


def test_calendar_commands_version_each_change_and_compute_due_times(app, runner, make_tenant, tmp_path):
    tenant = make_tenant(timezone="Asia/Shanghai")
    ics = tmp_path / "closures.ics"
    ics.write_bytes(YEAR_END_ICS)

    def run(*args: str) -> str:
        result = runner.invoke(args=[*args[:2], "--tenant", tenant.slug, *args[2:]])
        assert result.exit_code == 0, result.output
        return result.output

    assert run("calendar", "set-hours", LUNCH_BREAK_HOURS) == "Business hours v2 saved\n"
    assert run("calendar", "set-hours", LUNCH_BREAK_HOURS) == "no change: the calendar already says so\n"
    assert (
        run("calendar", "add-holiday", "2026-12-24", "--name", "Company day") == "Business hours v3 saved\n"
    )
    assert (
        run("calendar", "add-workday", "2026-12-26", "--hours", "10:00-16:00") == "Business hours v4 saved\n"
    )
    assert run("calendar", "import-cn", "--year", "2026") == "Business hours v5 saved\n"
    assert run("calendar", "import-ics", str(ics)) == "Business hours v6 saved\n"

    shown = run("calendar", "show").splitlines()
    assert shown[0].startswith("Business hours v6 (Asia/Shanghai), saved ")
    assert shown[1] == "hours: mon-fri 09:00-12:00,13:30-18:00; sat-sun closed"
    for line in (
        "holiday 2026-10-01 Thu National Day",
        "holiday 2026-12-24 Thu Company day",
        "holiday 2026-12-31 Thu Year end closure",
        "holiday 2027-01-01 Fri Year end closure",
        "working day 2026-10-10 Sat 09:00-12:00,13:30-18:00",  # made up for National Day
        "working day 2026-12-26 Sat 10:00-16:00",
    ):
        assert line in shown
    assert not any("2026-12-15" in line for line in shown)

    # Wed 17:00-18:00, then 1-7 October are closed: the second hour ends 8 October 10:00.
    assert run("sla", "due", "--start", "2026-09-30T17:00:00+08:00", "--minutes", "120") == (
        "2026-10-08T10:00:00+08:00\n"
    )
    # Any offset: 09:00 UTC is 17:00 in Shanghai.
    assert run("sla", "due", "--start", "2026-09-30T09:00:00+00:00", "--minutes", "120") == (
        "2026-10-08T10:00:00+08:00\n"
    )

    with acting_for(app, tenant) as session:
        created = events(session, "calendar.version_created")
        assert [e.data["version"] for e in created] == [1, 2, 3, 4, 5, 6]
        assert created[0].actor_kind == "system" and created[0].data["default"] is True
        assert {e.actor_kind for e in created[1:]} == {"operator"}
        assert {e.subject_id for e in created} == {DEFAULT_CALENDAR}
    assert_audit_chain_verifies(runner, tenant)


BAD_COMMANDS = [
    (["calendar", "set-hours", "{tenant}", "mon-fri 18:00-09:00"], "ends before it starts"),
    (["calendar", "set-hours", "{tenant}", "funday 09:00-17:00"], "“funday” is not a day"),
    (["calendar", "set-hours", "{tenant}", ""], "No opening hours given"),
    (["calendar", "add-holiday", "{tenant}", "2026-02-30"], "'2026-02-30' is not a date"),
    (["calendar", "add-workday", "{tenant}", "2026-12-26", "--hours", "25:00-26:00"], "is not a time of day"),
    (["calendar", "import-cn", "{tenant}", "--year", "2100"], "has no data for 2100"),
    (["calendar", "import-ics", "{tenant}", "{not_ics}"], "not an iCalendar file"),
    (["calendar", "show", "{tenant}", "--calendar", "Night shift"], "There is no calendar named Night shift"),
    (["sla", "due", "{tenant}", "--start", "2026-09-30T17:00:00", "--minutes", "5"], "give the offset"),
    (["sla", "due", "{tenant}", "--start", "next tuesday", "--minutes", "5"], "use ISO-8601"),
    (["calendar", "show", "--tenant", "no-such-desk"], "no tenant has the slug 'no-such-desk'"),
    (
        ["sla", "due", "--tenant", "no-such-desk", "--start", "2026-09-30T17:00:00+08:00", "--minutes", "5"],
        "no tenant has the slug 'no-such-desk'",
    ),
]


@pytest.mark.parametrize("args, message", BAD_COMMANDS)
def test_bad_command_input_is_refused_with_a_message_and_changes_nothing(
    app, runner, make_tenant, tmp_path, args, message
):
    tenant = make_tenant(timezone="Asia/Shanghai")
    not_ics = tmp_path / "holidays.ics"
    not_ics.write_text("Christmas: 25 December\n")
    assert (
        runner.invoke(args=["calendar", "set-hours", "--tenant", tenant.slug, LUNCH_BREAK_HOURS]).exit_code
        == 0
    )
    expanded = []
    for arg in args:
        expanded += ["--tenant", tenant.slug] if arg == "{tenant}" else [arg.format(not_ics=not_ics)]
    result = runner.invoke(args=expanded)
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit)  # a message, not a crash
    assert message in result.output and "Traceback" not in result.output
    with acting_for(app, tenant) as session:
        assert [e.data["version"] for e in events(session, "calendar.version_created")] == [1, 2]


def test_sla_sweep_command_reports_what_it_recorded(app, runner, desk):
    due_passed = shanghai(2026, 9, 17, 17, 30, 30)
    with travel(due_passed) as traveller:
        run_sweep(app)  # whatever other tests left due by now is recorded first
        traveller.move_to(WEDNESDAY_5PM)
        ticket_id = submit_refund(app, desk.tenant, "n1")
        traveller.move_to(due_passed)
        result = runner.invoke(args=["sla", "sweep"])
        assert result.exit_code == 0, result.output
        # The first response breached; nobody is assigned, so the two managers are told.
        assert result.output == "warned 0, breached 1, actions 2\n"
        again = runner.invoke(args=["sla", "sweep"])
        assert again.output == "warned 0, breached 0, actions 0\n"
    with acting_for(app, desk.tenant) as session:
        first = clocks_by_metric(ticket_id)[Metric.FIRST_RESPONSE]
        assert notified(session, first.id) == {(desk.manager.id, "breached"), (desk.admin.id, "breached")}
    assert runner.invoke(args=["sla", "schedule"]).output.startswith("Error: REDIS_URL is not set")
    assert_audit_chain_verifies(runner, desk.tenant)


@requires_redis
def test_the_scheduler_runs_the_sweep_and_books_the_next_minute_under_one_id(rq_app, make_tenant, make_user):
    """Under a worker with rq's scheduler, a booked sweep runs, records a breach and books
    the next minute; booking the same minute twice (a redeploy) leaves one job."""
    tenant = make_tenant(timezone="Asia/Shanghai")
    make_user(tenant, "manager")
    with travel(WEDNESDAY_5PM):
        ticket_id = submit_refund(rq_app, tenant, "scheduled")
    with acting_for(rq_app, tenant):
        due = clocks_by_metric(ticket_id)[Metric.FIRST_RESPONSE].due_at
    with time_machine.travel(due + timedelta(seconds=5), tick=True), rq_app.app_context():
        booked = {sweep.schedule_next(now=due - timedelta(minutes=1)) for _ in range(2)}
        registry = jobs.queue().scheduled_job_registry
        assert registry.get_job_ids() == list(booked)  # one job, however often it is booked
        SimpleWorker([jobs.queue()], connection=jobs.redis_connection()).work(burst=True, with_scheduler=True)
        next_minute = (due + timedelta(seconds=5)).replace(second=0, microsecond=0) + timedelta(minutes=1)
        assert registry.get_job_ids() == [sweep.SWEEP_JOB_PREFIX + next_minute.strftime("%Y%m%d%H%M")]
    with acting_for(rq_app, tenant):
        first = clocks_by_metric(ticket_id)[Metric.FIRST_RESPONSE]
        assert first.breached_at == due
