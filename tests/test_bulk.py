"""Many tickets at once (issue 17, section 3): bulk changes from the queue, run as a job
with a progress page, one audit event per ticket; saved views; the queue as CSV."""

import csv
import io
import re

from sqlalchemy import func, select, update

from crm.audit.models import AuditEvent
from crm.audit.service import Actor
from crm.auth.models import User
from crm.tickets import bulk
from crm.tickets import service as tickets
from crm.tickets.models import BulkRun, SavedView, Ticket
from tests.conftest import acting_for, login, submit
from tests.test_ticket_service import refund_request

QUEUE = "/t/{slug}/tickets"


def desk(app, make_tenant, make_user, count: int = 3, **request):
    tenant = make_tenant()
    with acting_for(app, tenant) as session:
        numbers = [
            tickets.submit_refund_request(refund_request(**request), nonce=f"bulk-{n}", ip=None).ticket.number
            for n in range(count)
        ]
        session.commit()
    return tenant, numbers


def signed_in(app, tenant, make_user, role: str):
    client = app.test_client()
    user = make_user(tenant, role)
    assert login(client, tenant, user).status_code == 302
    return client, user


def apply(client, tenant, fields: dict, numbers=()):
    return submit(
        client,
        f"/t/{tenant.slug}/tickets/bulk",
        {"tickets": [str(n) for n in numbers], **fields},
        form_page=QUEUE.format(slug=tenant.slug),
    )


def audit(app, tenant, action: str) -> list[AuditEvent]:
    with acting_for(app, tenant) as session:
        events = list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))
        session.expunge_all()
        return events


def test_an_agent_assigns_the_ticked_tickets_and_each_is_its_own_audit_event(app, make_tenant, make_user):
    tenant, numbers = desk(app, make_tenant, make_user)
    client, agent = signed_in(app, tenant, make_user, "agent")
    page = client.get(QUEUE.format(slug=tenant.slug))
    assert "Change several tickets" in page.text and 'form="bulk-form"' in page.text

    started = apply(client, tenant, {"action": "assign", "bulk_assignee": str(agent.id)}, numbers[:2])
    assert started.status_code == 302 and "/tickets/bulk/" in started.location
    progress = client.get(started.location)
    assert "Done: 2 changed, 0 left as they were." in progress.text
    with acting_for(app, tenant) as session:
        assigned = dict(session.execute(select(Ticket.number, Ticket.assignee_id)).all())
    assert assigned == {numbers[0]: agent.id, numbers[1]: agent.id, numbers[2]: None}
    assert len(audit(app, tenant, "ticket.assigned")) == 2
    [asked] = audit(app, tenant, "tickets.bulk_requested")
    assert asked.data == {"action": "assign", "tickets": 2, "value": str(agent.id)} and asked.actor_id == str(
        agent.id
    )
    assert all(event.actor_id == str(agent.id) for event in audit(app, tenant, "ticket.assigned"))


def test_every_match_of_the_filter_on_every_page_gets_the_note_and_priority(app, make_tenant, make_user):
    tenant, _numbers = desk(app, make_tenant, make_user, count=4)
    client, _ = signed_in(app, tenant, make_user, "manager")
    run = apply(
        client,
        tenant,
        {"scope": "all", "view": "all", "action": "note", "bulk_note": "Checked against the bank file."},
    )
    assert "Done: 4 changed" in client.get(run.location).text
    run = apply(
        client, tenant, {"scope": "all", "view": "all", "action": "priority", "bulk_priority": "high"}
    )
    assert "Done: 4 changed" in client.get(run.location).text
    again = apply(
        client, tenant, {"scope": "all", "view": "all", "action": "priority", "bulk_priority": "high"}
    )
    assert "Done: 0 changed" in client.get(again.location).text  # nothing to change the second time
    assert len(audit(app, tenant, "ticket.priority_changed")) == 4
    assert len(audit(app, tenant, "ticket.note_added")) == 4


def test_a_change_that_no_longer_applies_leaves_each_ticket_as_it_was_and_says_why(
    app, make_tenant, make_user
):
    tenant, numbers = desk(app, make_tenant, make_user)
    leaver = make_user(tenant, "agent")
    manager = make_user(tenant, "manager")
    with acting_for(app, tenant) as session:
        asker = session.get(User, manager.id)
        ids = bulk.ids_of_numbers(numbers)
        run = bulk.start(
            "assign", str(leaver.id), ids, user=asker, actor=Actor("user", str(asker.id), asker.email)
        )
        # Deactivated before the job runs (it runs after this commit).
        session.execute(update(User).where(User.id == leaver.id).values(active=False))
        session.commit()
        run_id = run.id
    with acting_for(app, tenant) as session:
        run = session.get(BulkRun, run_id)
        assert (run.status, run.done, run.changed) == ("done", 3, 0)
        assert [item["reason"] for item in run.skipped] == ["No active user has that id."] * 3
        assert (
            session.scalar(select(func.count()).select_from(Ticket).where(Ticket.assignee_id.is_not(None)))
            == 0
        )
    client = app.test_client()
    assert login(client, tenant, manager).status_code == 302
    page = client.get(f"/t/{tenant.slug}/tickets/bulk/{run_id}")  # each ticket left, linked
    assert page.status_code == 200
    assert all(f'href="/t/{tenant.slug}/tickets/{n}">RF-{n}</a>' in page.text for n in numbers)


def test_bad_bulk_requests_are_refused_and_nobody_reaches_another_tenants_tickets(
    app, make_tenant, make_user
):
    tenant, numbers = desk(app, make_tenant, make_user)
    other, other_numbers = desk(app, make_tenant, make_user)
    client, _agent = signed_in(app, tenant, make_user, "agent")
    for fields, numbers_sent in (
        ({"action": "explode"}, numbers),
        ({"action": "priority", "bulk_priority": "whenever"}, numbers),
        ({"action": "note", "bulk_note": "   "}, numbers),
        ({"action": "assign", "bulk_assignee": "999999999"}, numbers),
        ({"action": "close"}, []),
    ):
        refused = apply(client, tenant, fields, numbers_sent)
        assert refused.status_code == 302 and "/tickets/bulk/" not in refused.location, fields
    assert audit(app, tenant, "tickets.bulk_requested") == []
    # Another tenant's ticket numbers are this tenant's numbers too: only this tenant's change.
    run = apply(client, tenant, {"action": "priority", "bulk_priority": "urgent"}, other_numbers)
    client.get(run.location)
    with acting_for(app, other) as session:
        assert set(session.scalars(select(Ticket.priority))) == {"normal"}
    other_client, _ = signed_in(app, other, make_user, "admin")
    run_id = run.location.rsplit("/", 1)[1]
    assert other_client.get(f"/t/{other.slug}/tickets/bulk/{run_id}").status_code == 404
    auditor, _ = signed_in(app, tenant, make_user, "auditor")
    assert apply(auditor, tenant, {"action": "close"}, numbers).status_code == 403


def test_a_user_saves_a_filter_as_a_view_and_only_they_see_it(app, make_tenant, make_user):
    tenant, _numbers = desk(app, make_tenant, make_user)
    client, _user = signed_in(app, tenant, make_user, "agent")
    colleague, _ = signed_in(app, tenant, make_user, "agent")
    saved = submit(
        client,
        f"/t/{tenant.slug}/tickets/views",
        {"name": "Urgent refunds", "view": "all", "priority": "urgent", "kind": "refund"},
        form_page=QUEUE.format(slug=tenant.slug),
        follow_redirects=True,
    )
    assert "Saved the view “Urgent refunds”." in saved.text
    link = re.search(r'href="([^"]+)"[^>]*>Urgent refunds</a>', saved.text).group(1)
    assert "priority=urgent" in link and "kind=refund" in link
    assert "Urgent refunds" not in colleague.get(QUEUE.format(slug=tenant.slug)).text
    with acting_for(app, tenant) as session:
        view_id = session.scalars(select(SavedView.id)).one()
    assert (
        submit(
            colleague, f"/t/{tenant.slug}/tickets/views/{view_id}/delete", {}, form_page=f"/t/{tenant.slug}/"
        ).status_code
        == 404
    )
    assert (
        submit(
            client, f"/t/{tenant.slug}/tickets/views", {"name": ""}, form_page=f"/t/{tenant.slug}/"
        ).status_code
        == 302
    )
    deleted = submit(
        client,
        f"/t/{tenant.slug}/tickets/views/{view_id}/delete",
        {},
        form_page=f"/t/{tenant.slug}/",
        follow_redirects=True,
    )
    assert "The view is deleted." in deleted.text and "Urgent refunds" not in deleted.text
    assert [e.action for e in audit(app, tenant, "queue.view_saved")] == ["queue.view_saved"]
    assert len(audit(app, tenant, "queue.view_deleted")) == 1


def test_the_queue_exports_every_match_as_csv_that_a_spreadsheet_reads_safely(app, make_tenant, make_user):
    tenant, numbers = desk(
        app, make_tenant, make_user, count=3, customer={"name": '=HYPERLINK("http://evil.example")'}
    )
    manager, _ = signed_in(app, tenant, make_user, "manager")
    response = manager.get(f"/t/{tenant.slug}/tickets/export.csv?view=all&sort=oldest")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    text = response.get_data(as_text=True)
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert rows[0][:3] == ["Ticket", "Received", "Status"]
    assert [row[0] for row in rows[1:]] == [f"RF-{n}" for n in numbers]
    assert all(row[6].startswith("'=") for row in rows[1:])  # a name is never a formula
    assert len(audit(app, tenant, "tickets.exported")) == 1
    chinese = manager.get(
        f"/t/{tenant.slug}/tickets/export.csv?view=all", headers={"Accept-Language": "zh-CN"}
    )
    assert chinese.get_data(as_text=True).lstrip("\ufeff").startswith("工单")
    agent, _ = signed_in(app, tenant, make_user, "agent")
    assert agent.get(f"/t/{tenant.slug}/tickets/export.csv?view=all").status_code == 403
    assert manager.get(f"/t/{tenant.slug}/tickets/export.csv?view=nonsense").status_code == 400
