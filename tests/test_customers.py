"""Customers' pages (issue 17, section 4): the list and search, and a profile with every
ticket and lead of the person, the details as given on each request, and the
do-not-contact state; never another tenant's customer, never for auditors."""

import io
import re

from sqlalchemy import select, update

from crm.audit.models import AuditEvent
from crm.audit.service import Actor, verify_chain
from crm.customers.models import Customer
from crm.dnc import service as dnc
from crm.dnc.models import EntrySource
from crm.files import storage
from crm.files.models import Attachment
from crm.leads import intake
from crm.leads.models import Source
from crm.tickets import service as tickets
from crm.tickets import staff_actions
from crm.tickets.models import Ticket
from tests.conftest import acting_for, login, submit
from tests.test_api import TICKET as API_TICKET
from tests.test_api import call, make_key
from tests.test_api_calls import dialer_call, wav_bytes
from tests.test_ticket_service import PDF, refund_request

OPERATOR = Actor.operator("test")


def file_requests(app, tenant) -> int:
    """Two requests of 王小明 (the second from a new address), one of 李雷, a trial request
    from 王小明's phone, and his number on the do-not-contact list; his customer id."""
    with acting_for(app, tenant) as session:
        first = tickets.submit_refund_request(refund_request(), nonce="c1", ip=None).ticket
        tickets.submit_refund_request(
            refund_request(customer={"email": "new.address@example.test"}), nonce="c2", ip=None
        )
        li_lei_and_a_lead(nonce="c3")
        session.commit()
        return first.customer_id


def li_lei_and_a_lead(nonce: str) -> None:
    """李雷's request, a trial request from 王小明's phone, and his number on the
    do-not-contact list (in the tenant in context)."""
    tickets.submit_refund_request(
        refund_request(customer={"name": "李雷", "phone": "13900139000", "email": "lilei@example.test"}),
        nonce=nonce,
        ip=None,
    )
    intake.receive(
        intake.LeadDetails(name="王小明", phone="13800138000", company="小明外呼"),
        source=Source.STAFF,
        actor=OPERATOR,
        ip=None,
        proofs=[(None, True, "signed form")],
    )
    dnc.add_entry(
        "phone", "13800138000", reason="Asked on the phone", source=EntrySource.STAFF, actor=OPERATOR
    )


def ticket_links(page: str) -> list[str]:
    return re.findall(r'href="/t/[^/]+/tickets/\d+">(RF-\d+)</a>', page)


def signed_in(app, tenant, make_user, role: str):
    client = app.test_client()
    assert login(client, tenant, make_user(tenant, role)).status_code == 302
    return client


def test_the_list_finds_customers_and_the_profile_shows_every_request_as_given(app, make_tenant, make_user):
    tenant = make_tenant()
    customer_id = file_requests(app, tenant)
    agent = signed_in(app, tenant, make_user, "agent")
    listing = agent.get(f"/t/{tenant.slug}/customers")
    assert listing.status_code == 200 and "王小明" in listing.text and "李雷" in listing.text
    assert "Do not contact" in listing.text
    for q in ("8000", "李雷", "lilei@example.test"):
        found = agent.get(f"/t/{tenant.slug}/customers", query_string={"q": q})
        assert found.status_code == 200
        assert ("李雷" in found.text) == (q != "8000"), q
    assert "No customer matches." in agent.get(f"/t/{tenant.slug}/customers?q=nobody-here").text

    profile = agent.get(f"/t/{tenant.slug}/customers/{customer_id}")
    assert profile.status_code == 200
    text = profile.text
    assert len(ticket_links(text)) == 2 and "李雷" not in text
    assert "new.address@example.test" in text  # the second request's own address
    assert "LD-1001" in text and "小明外呼" in text
    assert "Listed" in text and "Not on the do-not-contact list." not in text


def test_another_tenants_customer_is_404_and_auditors_do_not_see_customers(app, make_tenant, make_user):
    tenant, other = make_tenant(), make_tenant()
    customer_id = file_requests(app, tenant)
    outsider = signed_in(app, other, make_user, "admin")
    assert outsider.get(f"/t/{other.slug}/customers/{customer_id}").status_code == 404
    assert "王小明" not in outsider.get(f"/t/{other.slug}/customers").text
    auditor = signed_in(app, tenant, make_user, "auditor")
    assert auditor.get(f"/t/{tenant.slug}/customers").status_code == 403
    assert auditor.get(f"/t/{tenant.slug}/customers/{customer_id}").status_code == 403
    anonymous = app.test_client().get(f"/t/{tenant.slug}/customers/{customer_id}")
    assert anonymous.status_code == 302 and "/login" in anonymous.location
    agent = signed_in(app, tenant, make_user, "agent")
    for bad in ("?before=-1", "?before=99999999999999999999", "?q=" + "x" * 5000):
        assert agent.get(f"/t/{tenant.slug}/customers{bad}").status_code in (200, 400)


def test_each_ticket_links_back_to_its_customer(app, make_tenant, make_user):
    tenant = make_tenant()
    customer_id = file_requests(app, tenant)
    with acting_for(app, tenant) as session:
        number = session.scalars(select(Ticket.number).where(Ticket.customer_id == customer_id)).first()
    agent = signed_in(app, tenant, make_user, "agent")
    page = agent.get(f"/t/{tenant.slug}/tickets/{number}")
    assert re.search(rf'href="/t/{tenant.slug}/customers/{customer_id}"', page.text)


def test_two_records_of_one_person_merge_and_a_split_undoes_it(app, make_tenant, make_user):
    tenant = make_tenant()
    customer_id = file_requests(app, tenant)
    with acting_for(app, tenant) as session:
        other_id = session.scalars(select(Ticket.customer_id).where(Ticket.requester_name == "李雷")).one()
    agent = signed_in(app, tenant, make_user, "agent")
    page = f"/t/{tenant.slug}/customers/{other_id}"
    merged = submit(agent, f"{page}/merge", {"into": str(customer_id)}, form_page=page, follow_redirects=True)
    assert "Merged: 1 tickets and 0 leads moved here." in merged.text
    assert len(ticket_links(merged.text)) == 3 and "李雷" in merged.text  # his request keeps his details
    gone = agent.get(page)  # the merged record's page leads to the one it went into
    assert gone.status_code == 302 and gone.location.endswith(f"/customers/{customer_id}")
    with acting_for(app, tenant) as session:
        [event] = session.scalars(select(AuditEvent).where(AuditEvent.action == "customer.merged")).all()
        moved = event.data["ticket_ids"]
        number = session.get(Ticket, moved[0]).number
    assert event.data["from_customer_id"] == other_id and len(moved) == 1

    target = f"/t/{tenant.slug}/customers/{customer_id}"
    split = submit(agent, f"{target}/split", {"ticket": str(number)}, form_page=target, follow_redirects=True)
    assert "now has a customer record of its own" in split.text
    assert len(ticket_links(split.text)) == 1 and "李雷" in split.text
    with acting_for(app, tenant) as session:
        ticket = session.scalars(select(Ticket).where(Ticket.number == number)).one()
        assert ticket.customer_id not in (customer_id, other_id)
        assert session.get(Customer, ticket.customer_id).phone == "+8613900139000"
        assert (
            len(session.scalars(select(AuditEvent).where(AuditEvent.action == "customer.split")).all()) == 1
        )


def test_merge_and_split_refuse_what_is_not_this_customers(app, make_tenant, make_user):
    tenant, other = make_tenant(), make_tenant()
    customer_id = file_requests(app, tenant)
    foreign_id = file_requests(app, other)
    agent = signed_in(app, tenant, make_user, "agent")
    page = f"/t/{tenant.slug}/customers/{customer_id}"
    for into in (str(foreign_id), str(customer_id), "abc", "9" * 30, "²"):
        response = submit(agent, f"{page}/merge", {"into": into}, form_page=page, follow_redirects=True)
        assert response.status_code == 200 and "Merged:" not in response.text, into
    with acting_for(app, other) as session:
        foreign_number = session.scalars(select(Ticket.number)).first()
    assert submit(agent, f"{page}/split", {"ticket": "999999"}, form_page=page).status_code == 404
    assert submit(agent, f"{page}/split", {"ticket": "²"}, form_page=page).status_code == 404
    with acting_for(app, tenant) as session:
        lilei = session.scalars(select(Ticket.number).where(Ticket.requester_name == "李雷")).one()
    assert (
        submit(agent, f"{page}/split", {"ticket": str(lilei)}, form_page=page).status_code == 404
    )  # not his
    assert foreign_number is not None
    auditor = signed_in(app, tenant, make_user, "auditor")
    assert submit(auditor, f"{page}/merge", {"into": "1"}, form_page=f"/t/{tenant.slug}/").status_code == 403


def test_a_customer_is_erased_on_request_and_the_chain_still_verifies(app, make_tenant, make_user):
    tenant = make_tenant()
    with acting_for(app, tenant) as session:
        submitted = tickets.submit_refund_request(
            refund_request(uploads=[tickets.Upload("账单.pdf", PDF)]), nonce="e1", ip=None
        )
        ticket, token = submitted.ticket, submitted.tracking_token
        staff_actions.add_note(ticket, "王小明来电，说账单上扣了两次费", user=None, ip=None, actor=OPERATOR)
        customer_id, number, tenant_id = ticket.customer_id, ticket.number, ticket.tenant_id
        [file] = session.scalars(select(Attachment)).all()
        blob = storage.blob_path(tenant_id, file.sha256)
        li_lei_and_a_lead(nonce="e2")
        session.commit()
    assert blob.exists()
    page = f"/t/{tenant.slug}/customers/{customer_id}"
    erase = {"channel": "email", "confirm": "yes"}
    agent = signed_in(app, tenant, make_user, "agent")
    assert "Erase personal data" not in agent.get(page).text
    assert submit(agent, f"{page}/erase", erase, form_page=page).status_code == 422
    manager = signed_in(app, tenant, make_user, "manager")
    refused = submit(manager, f"{page}/erase", erase, form_page=page)
    assert refused.status_code == 422 and "Still open: RF-1001" in refused.text  # its answer needs them
    with acting_for(app, tenant) as session:
        session.execute(update(Ticket).where(Ticket.number == number).values(status="closed"))
        session.commit()
    unconfirmed = submit(manager, f"{page}/erase", {"channel": "email"}, form_page=page)
    assert unconfirmed.status_code == 422 and "cannot be undone" in unconfirmed.text

    done = submit(manager, f"{page}/erase", erase, form_page=page, follow_redirects=True)
    assert "Erased: the details on 1 tickets and 1 leads, 1 files and" in done.text
    assert "Personal data erased on" in done.text
    for shown in (done.text, manager.get(f"/t/{tenant.slug}/tickets/{number}").text):
        assert "王小明" not in shown and "13800138000" not in shown and "xm@example.test" not in shown
    assert "扣了两次费" not in manager.get(f"/t/{tenant.slug}/tickets/{number}").text
    assert "Erased at the customer" in manager.get(f"/t/{tenant.slug}/tickets/{number}").text
    for q in ("王小明", "13800138000", "扣费", "账单"):
        found = manager.get(f"/t/{tenant.slug}/tickets", query_string={"view": "all", "q": q}).text
        assert "RF-1001" not in found, q
    assert app.test_client().get(f"/t/{tenant.slug}/track/{token}").status_code == 404
    assert not blob.exists()
    with acting_for(app, tenant) as session:
        assert verify_chain().count > 0
        [event] = session.scalars(select(AuditEvent).where(AuditEvent.action == "customer.erased")).all()
        assert event.data["asked_by"] == "email" and event.data["files_removed"] == 1
        assert "王小明" not in str(event.data)
        assert session.scalars(select(Customer.name).where(Customer.phone == "+8613900139000")).all() == [
            "李雷"
        ]
        assert dnc.standing("+8613800138000", None).listed  # the wish not to be called stays
    assert "李雷" in manager.get(f"/t/{tenant.slug}/tickets/1002").text
    again = submit(manager, f"{page}/erase", erase, form_page=page)
    assert "Erase personal data" not in again.text and "already been erased" in again.text


def test_another_tenants_customer_cannot_be_erased(app, make_tenant, make_user):
    tenant, other = make_tenant(), make_tenant()
    customer_id = file_requests(app, other)
    manager = signed_in(app, tenant, make_user, "manager")
    own = f"/t/{tenant.slug}/customers"
    response = submit(
        manager, f"{own}/{customer_id}/erase", {"channel": "email", "confirm": "yes"}, form_page=own
    )
    assert response.status_code == 404
    with acting_for(app, other) as session:
        assert session.get(Customer, customer_id).erased_at is None


def test_an_erased_customers_dialer_calls_lose_number_note_and_recording(app, make_tenant, make_user):
    tenant = make_tenant()
    key = make_key(app, tenant, "tickets:read,tickets:write,calls:write")
    client = app.test_client()
    assert call(client, "POST", tenant, "/tickets", key, API_TICKET).status_code == 201
    fields = {name: str(value) for name, value in dialer_call().items()}
    posted = client.post(
        f"/t/{tenant.slug}/api/v1/calls",
        data={**fields, "recording": (io.BytesIO(wav_bytes()), "call.wav")},
        headers={"Authorization": f"Bearer {key}"},
        content_type="multipart/form-data",
    )
    assert posted.status_code == 201, posted.json
    with acting_for(app, tenant) as session:
        recording = storage.blob_path(tenant.id, posted.json["recording"]["sha256"])
        customer_id = session.scalars(select(Ticket.customer_id)).one()
        session.execute(update(Ticket).values(status="closed"))
        session.commit()
    assert recording.exists()
    manager = signed_in(app, tenant, make_user, "manager")
    calls_page = f"/t/{tenant.slug}/calls?state=all"
    before = manager.get(calls_page).text
    assert "客户确认收到退款说明" in before and "+8613800138000" in before
    page = f"/t/{tenant.slug}/customers/{customer_id}"
    erased = submit(manager, f"{page}/erase", {"channel": "letter", "confirm": "yes"}, form_page=page)
    assert erased.status_code == 302
    calls = manager.get(calls_page)
    assert calls.status_code == 200
    assert "+8613800138000" not in calls.text and "客户确认收到退款说明" not in calls.text
    assert not recording.exists()


def test_an_erasure_without_how_the_person_asked_is_refused(app, make_tenant, make_user):
    tenant = make_tenant()
    customer_id = file_requests(app, tenant)
    with acting_for(app, tenant) as session:
        session.execute(update(Ticket).values(status="closed"))
        session.commit()
    manager = signed_in(app, tenant, make_user, "manager")
    page = f"/t/{tenant.slug}/customers/{customer_id}"
    for channel in ("", "carrier-pigeon", "x" * 5000):
        refused = submit(manager, f"{page}/erase", {"channel": channel, "confirm": "yes"}, form_page=page)
        assert refused.status_code == 422 and "Say how the customer asked" in refused.text
    with acting_for(app, tenant) as session:
        assert session.get(Customer, customer_id).erased_at is None
