"""The ticket's timeline shows who gave the ticket to whom and who changed its priority
(issue 11, section 6), in the reader's language, and only to staff."""

import re

import pytest

from crm.audit.service import Actor
from crm.auth import service as auth
from crm.auth.models import User
from crm.sla import versions
from crm.sla.models import ConfigKind
from crm.sla.rules import MANAGERS_QUEUE, Action, Policy, Rule
from crm.tickets import service as tickets
from crm.tickets.models import Ticket
from tests import test_sla
from tests.conftest import acting_for, login
from tests.test_refunds import text_of
from tests.test_sla import OPERATOR, WEDNESDAY_5PM, run_sweep, shanghai, staff, submit_refund, travel
from tests.test_sla_pages import send_page_form
from tests.test_staff_notifications import new_ticket

desk = test_sla.desk  # a Shanghai desk with one of each kind of staff

EXPECTED = {
    "en": [
        "Assigned to Wei Zhang by Na Li",
        "Priority raised from normal to urgent by Na Li",
        "Priority lowered from urgent to low by Na Li",
        "Unassigned by Na Li",
    ],
    "zh_CN": [
        "Na Li 将工单分配给 Wei Zhang",
        "Na Li 将优先级从“普通”提高到“紧急”",
        "Na Li 将优先级从“紧急”降低到“低”",
        "Na Li 取消了工单的分配",
    ],
}


def person(app, tenant, name: str, role: str, locale: str | None = None):
    with acting_for(app, tenant) as session:
        user = auth.create_user(
            email=f"{name.replace(' ', '.').lower()}@example.test",
            role=role,
            password="correct horse battery",
            display_name=name,
            actor=Actor.operator("test"),
        )
        if locale:
            auth.set_locale(user, locale, actor=Actor.operator("test"))
        session.commit()
        return session.get(User, user.id).id


def conversation(client, url: str) -> str:
    page = client.get(url).text
    start = page.index('<ol class="list-unstyled mb-4"')  # the conversation
    return text_of(page[start : page.index("</ol>", start)])


def ticket_action(client, url: str, action: str, field: str, value: str):
    response = send_page_form(client, url, {f"{action}-{field}": value}, action=f"{url}/{action}")
    assert response.status_code == 302, text_of(response.text)


@pytest.mark.parametrize("locale", ["en", "zh_CN"])
def test_assignments_and_priority_changes_appear_in_the_timeline_in_order(app, client, make_tenant, locale):
    tenant = make_tenant()
    person(app, tenant, "Na Li", "manager", locale)
    agent_id = person(app, tenant, "Wei Zhang", "agent")
    reference, tracking = new_ticket(app, tenant)
    number = int(reference.split("-")[1])
    url = f"/t/{tenant.slug}/tickets/{number}"
    manager = type("Staff", (), {"email": "na.li@example.test", "password": "correct horse battery"})
    assert login(client, tenant, manager).status_code == 302

    ticket_action(client, url, "assign", "assignee_id", str(agent_id))
    ticket_action(client, url, "priority", "priority", "urgent")
    ticket_action(client, url, "priority", "priority", "low")
    ticket_action(client, url, "assign", "assignee_id", "")
    ticket_action(client, url, "priority", "priority", "low")  # no change: nothing to show

    shown = conversation(client, url)
    positions = [shown.find(line) for line in EXPECTED[locale]]
    assert -1 not in positions, (shown, EXPECTED[locale])
    assert positions == sorted(positions)
    assert len(re.findall("优先级从|Priority (?:raised|lowered)", shown)) == 2

    customer_sees = text_of(app.test_client().get(tracking).text)
    assert "Wei Zhang" not in customer_sees
    assert not any(line in customer_sees for lines in EXPECTED.values() for line in lines)


def test_a_missed_deadlines_escalation_appears_in_the_timeline_as_the_sla_policys(app, desk):
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
            ticket = session.get(Ticket, ticket_id)
            tickets.assign(ticket, desk.agent.id, user=staff(session, desk.admin), ip=None)
            number = ticket.number
            session.commit()
        traveller.move_to(shanghai(2026, 9, 16, 18, 0, 30))  # the first response was due at 18:00
        run_sweep(app)
        manager = app.test_client()
        assert login(manager, desk.tenant, desk.manager).status_code == 302
        shown = conversation(manager, f"/t/{desk.tenant.slug}/tickets/{number}")

    assert "Priority raised from normal to high by the SLA policy, on a missed deadline" in shown
    assert "Unassigned by the SLA policy, on a missed deadline" in shown
