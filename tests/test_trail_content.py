"""From the trail alone, an inspector recomputes a case's figures: version events carry
the calendars and rules clocks cite, by the ids they cite; decision events carry the
calculation and digests of what people wrote; every delivery attempt is an event."""

from datetime import datetime

from sqlalchemy import select

from crm.audit.chain import digest
from crm.audit.models import AuditEvent
from crm.sla.businesstime import CalendarSpec, timeline_for
from tests.conftest import acting_for
from tests.test_refunds import PARTIAL, WEDNESDAY_10AM, decide, desk, received, staff_client, travel  # noqa: F401


def trail(app, tenant) -> list[AuditEvent]:
    with acting_for(app, tenant) as session:
        return list(session.scalars(select(AuditEvent).order_by(AuditEvent.seq)))


def test_a_clocks_due_time_is_recomputed_from_the_version_events_it_cites(app, desk):  # noqa: F811
    with travel(WEDNESDAY_10AM):
        received(app, desk.tenant)
    events = trail(app, desk.tenant)
    versions = {event.data["id"]: event.data for event in events if event.action.endswith(".version_created")}
    business = [
        clock
        for event in events
        if event.action == "clock.started"
        for clock in event.data["clocks"]
        if clock["unit"] == "business_minutes"
    ]
    assert business, "a refund request starts business-time clocks"
    for clock in business:
        calendar = versions[clock["calendar_version_id"]]
        assert clock["config_version_id"] in versions  # the SLA policy version it pinned
        spec = CalendarSpec.from_json(calendar["body"])
        start = datetime.fromisoformat(clock["started_at"])
        due = timeline_for(spec).add(start, clock["target"])
        assert due == datetime.fromisoformat(clock["due_at"]), clock


def test_a_decision_event_carries_its_calculation_and_digests(app, desk):  # noqa: F811
    tenant = desk.tenant
    with travel(WEDNESDAY_10AM):
        ticket = received(app, tenant)
        agent = staff_client(app, tenant, desk.agent)
        assert decide(agent, tenant, ticket.number, **PARTIAL).status_code == 302
    [proposed] = [event for event in trail(app, tenant) if event.action == "refund.decision_proposed"]
    data = proposed.data
    # Each line: what it says, the change in minor units, and the running amount; the
    # amounts add up to what was decided.
    lines = data["calculation"]["lines"]
    running = 0
    for _text, change, total in lines:
        running += change
        assert running == total
    assert running == data["suggested_minor"]
    assert data["note_sha256"] == digest("")  # PARTIAL types no note
    assert data["differs_reason_sha256"] is None
    assert data["amount_minor"] == 7550
