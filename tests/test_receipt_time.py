"""A complaint staff logged late: they record when it truly came in, with a reason, and
its regulatory deadline counts from then; the thread and the audit trail say so."""

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from crm.audit.models import AuditEvent
from crm.sla.models import Metric
from tests.conftest import acting_for, login, submit
from tests.test_deadlines_law import SHANGHAI, assigning, complaint_at, desk, regulatory
from tests.test_sla import travel

LOGGED = datetime(2026, 10, 20, 10, tzinfo=SHANGHAI)  # a Tuesday


@pytest.fixture
def late_complaint(app, make_tenant, make_user):
    tenant, agent = desk(
        app,
        make_tenant,
        make_user,
        timezone="Asia/Shanghai",
        hours="mon-fri 09:00-18:00",
        deadlines=assigning(("complaint", "*", "cn-telecom")),
    )
    ticket_id, number = complaint_at(app, tenant, agent, LOGGED)
    return tenant, agent, ticket_id, number


def post_receipt_time(client, tenant, number: int, when: str, reason: str):
    url = f"/t/{tenant.slug}/tickets/{number}"
    return submit(
        client,
        f"{url}/received-at",
        {"received-received_at": when, "received-reason": reason},
        form_page=url,
    )


def test_staff_record_the_true_time_of_receipt_and_the_regulatory_deadline_follows(app, late_complaint):
    tenant, agent, ticket_id, number = late_complaint
    before = regulatory(app, tenant, ticket_id).due_at
    with travel(LOGGED + timedelta(hours=1)):
        client = app.test_client()
        assert login(client, tenant, agent).status_code == 302
        response = post_receipt_time(
            client, tenant, number, "2026-10-16T15:30", "来电投诉当天系统故障，次周补录。"
        )
        assert response.status_code == 302, response.text
        page = client.get(f"/t/{tenant.slug}/tickets/{number}").text
    final = regulatory(app, tenant, ticket_id)
    assert final.started_at == datetime(2026, 10, 16, 15, 30, tzinfo=SHANGHAI)
    assert final.due_at < before
    assert "It came in at Fri, Oct 16, 2026 15:30, before it was logged" in page
    assert "来电投诉当天系统故障，次周补录。" in page
    assert "logged Tue, Oct 20, 2026 10:00" in page
    with acting_for(app, tenant) as session:
        [event] = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "ticket.receipt_time_set")
        ).all()
    assert event.data["after"] == "2026-10-16T07:30:00.000000Z"  # 15:30 in Shanghai, written in UTC
    assert "reason_sha256" in event.data and "次周" not in str(event.data)
    assert regulatory(app, tenant, ticket_id, Metric.REGULATORY_FINAL).state != "met"


@pytest.mark.parametrize(
    ("when", "reason", "message"),
    [
        ("2026-10-21T09:00", "补录", "cannot be after the ticket was logged"),
        ("2026-10-16T15:30", "", "This field is required."),
        ("2026-05-01T09:00", "补录", "more than 90 days late"),
        ("not a time", "补录", "Not a valid datetime value."),
    ],
)
def test_a_bad_time_of_receipt_is_refused_beside_its_field_and_nothing_changes(
    app, late_complaint, when, reason, message
):
    tenant, agent, ticket_id, number = late_complaint
    before = regulatory(app, tenant, ticket_id)
    with travel(LOGGED + timedelta(hours=1)):
        client = app.test_client()
        assert login(client, tenant, agent).status_code == 302
        response = post_receipt_time(client, tenant, number, when, reason)
    assert response.status_code in (400, 422) and message in response.text
    after = regulatory(app, tenant, ticket_id)
    assert (after.started_at, after.due_at) == (before.started_at, before.due_at)


def test_another_tenants_staff_cannot_set_the_time_of_receipt(app, late_complaint, make_tenant, make_user):
    tenant, _agent, ticket_id, number = late_complaint
    other = make_tenant()
    stranger = make_user(other, "manager")
    client = app.test_client()
    assert login(client, other, stranger).status_code == 302
    url = f"/t/{other.slug}/tickets/{number}"
    assert client.get(url).status_code == 404
    response = client.post(
        f"/t/{tenant.slug}/tickets/{number}/received-at",
        data={"received-received_at": "2026-10-16T15:30", "received-reason": "x"},
    )
    assert response.status_code in (302, 400, 404)
    assert regulatory(app, tenant, ticket_id).started_at == LOGGED
