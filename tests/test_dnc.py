"""The do-not-contact list's page: who may add and remove, the reason a removal needs,
its audit events, search, and another tenant's entries; the banner on a ticket."""

from sqlalchemy import select

from crm.audit.models import AuditEvent
from crm.audit.service import Actor
from crm.dnc import service as dnc
from crm.dnc.models import DoNotContact
from crm.tickets import service as tickets
from tests.conftest import acting_for, login, submit
from tests.test_ticket_service import refund_request

OPERATOR = Actor.operator("test")


def entries(app, tenant) -> list[DoNotContact]:
    with acting_for(app, tenant) as session:
        found = list(session.scalars(select(DoNotContact).order_by(DoNotContact.id)))
        session.expunge_all()
        return found


def test_an_agent_adds_a_number_and_only_a_manager_removes_it_with_a_reason(
    app, client, make_tenant, make_user
):
    tenant = make_tenant()
    agent, manager = make_user(tenant, "agent"), make_user(tenant, "manager")
    url = f"/t/{tenant.slug}/dnc"
    login(client, tenant, agent)
    added = submit(
        client, url, {"value": "139 0013 9000", "reason": "Asked on the call of 3 Dec", "source": "call"}
    )
    assert added.status_code == 302
    again = submit(client, url, {"value": "+8613900139000", "reason": "again", "source": "staff"})
    assert again.status_code == 302 and len(entries(app, tenant)) == 1  # one standing entry
    [entry] = entries(app, tenant)
    assert (entry.value, entry.source, entry.added_by_id) == ("+8613900139000", "call", agent.id)
    page = client.get(url)
    assert "+8613900139000" in page.text and "Remove" not in page.text  # an agent cannot remove
    assert submit(client, f"{url}/{entry.id}/remove", {"reason": "mistake"}, form_page=url).status_code == 403
    bad = submit(client, url, {"value": "not a number", "reason": "x", "source": "staff"})
    assert bad.status_code == 422
    boss = app.test_client()
    login(boss, tenant, manager)
    assert submit(boss, f"{url}/{entry.id}/remove", {"reason": ""}, form_page=url).status_code == 400
    assert (
        submit(
            boss, f"{url}/{entry.id}/remove", {"reason": "Entered for the wrong person"}, form_page=url
        ).status_code
        == 302
    )
    [entry] = entries(app, tenant)
    assert entry.removed_at is not None and entry.removal_reason == "Entered for the wrong person"
    assert (
        "+8613900139000" not in boss.get(url).text and "+8613900139000" in boss.get(url + "?removed=1").text
    )
    with acting_for(app, tenant) as session:
        actions = [
            e.action
            for e in session.scalars(select(AuditEvent).where(AuditEvent.subject_type == "do_not_contact"))
        ]
        assert actions == ["dnc.added", "dnc.removed"]
        [removed] = session.scalars(select(AuditEvent).where(AuditEvent.action == "dnc.removed")).all()
        assert "13900139000" not in str(removed.data)


def test_another_tenants_list_is_neither_seen_nor_changed(app, client, make_tenant, make_user):
    tenant, other = make_tenant(), make_tenant()
    with acting_for(app, other) as session:
        entry, _ = dnc.add_entry("phone", "13900139000", reason="theirs", source="staff", actor=OPERATOR)
        session.commit()
        entry_id = entry.id
    login(client, tenant, make_user(tenant, "manager"))
    assert "+8613900139000" not in client.get(f"/t/{tenant.slug}/dnc").text
    url = f"/t/{tenant.slug}/dnc"
    assert submit(client, f"{url}/{entry_id}/remove", {"reason": "x"}, form_page=url).status_code == 404
    assert entries(app, other)[0].removed_at is None


def test_a_ticket_of_a_listed_number_shows_the_banner(app, client, make_tenant, make_user):
    tenant = make_tenant()
    agent = make_user(tenant, "agent")
    with acting_for(app, tenant) as session:
        tickets.submit_refund_request(refund_request(), nonce="dnc", ip=None)
        dnc.add_entry("phone", "13800138000", reason="12321 complaint", source="12321", actor=OPERATOR)
        session.commit()
    login(client, tenant, agent)
    page = client.get(f"/t/{tenant.slug}/tickets/1001")
    assert 'id="dnc-banner"' in page.text and "12321 complaint" in page.text
