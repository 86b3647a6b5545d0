"""The JSON API: keys and their scopes, tenants and states; tickets, customers, leads,
the do-not-contact list and the audit trail; idempotent creation; problem details; the
OpenAPI document; the admins' page; the CLI."""

import io
import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from crm.api import keys
from crm.api.schemas import LeadOut, TicketDetail, TicketOut
from crm.audit.models import AuditEvent
from crm.audit.service import Actor
from crm.columns import utcnow
from crm.files.models import Attachment
from crm.leads.models import Consent, Lead
from crm.tickets.models import Ticket
from tests.conftest import CSRF_RE, acting_for
from tests.test_portal import PDF

OPERATOR = Actor.operator("test")
TICKET = {
    "name": "李雷",
    "phone": "13800138000",
    "email": "lilei@example.test",
    "reason": "unused_balance",
    "description": "号码已注销，请退回余额。",
    "amount": "199.00",
}


def make_key(app, tenant, scopes="tickets:read,tickets:write", **changes) -> str:
    with acting_for(app, tenant) as session:
        made = keys.create_key(name="Dialer", scopes=scopes, expires_at=None, actor=OPERATOR)
        for name, value in changes.items():
            setattr(made.key, name, value)
        session.commit()
        return made.secret


def call(client, method, tenant, path, key=None, body=None, **headers):
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = json.dumps(body) if body is not None and not isinstance(body, (str, bytes)) else body
    return client.open(
        f"/t/{tenant.slug}/api/v1{path}",
        method=method,
        data=data,
        headers=headers,
        content_type="application/json",
    )


def count(app, tenant, model) -> int:
    with acting_for(app, tenant) as session:
        return session.scalar(select(func.count()).select_from(model))


# --- keys ----------------------------------------------------------------------------------------


def test_the_cli_prints_the_key_alone_on_its_last_line_and_it_works(app, client, runner, make_tenant):
    tenant = make_tenant()
    made = runner.invoke(
        args=["api-keys", "create", "--tenant", tenant.slug, "--name", "Billing", "--scopes", "tickets:read"]
    )
    assert made.exit_code == 0, made.output
    secret = made.output.strip().splitlines()[-1]
    assert secret.startswith("ldk_") and len(secret) > 40
    assert call(client, "GET", tenant, "/tickets", secret).status_code == 200
    listed = runner.invoke(args=["api-keys", "list", "--tenant", tenant.slug])
    assert "Billing" in listed.output and secret not in listed.output
    key_id = listed.output.split("\t")[0]
    assert runner.invoke(args=["api-keys", "revoke", "--tenant", tenant.slug, key_id]).exit_code == 0
    revoked = call(client, "GET", tenant, "/tickets", secret)
    assert revoked.status_code == 401 and revoked.mimetype == "application/problem+json"
    bad = runner.invoke(
        args=["api-keys", "create", "--tenant", tenant.slug, "--name", "x", "--scopes", "root"]
    )
    assert bad.exit_code != 0 and "Choose scopes" in bad.output


def test_no_key_a_wrong_scope_another_tenant_and_an_expired_key(app, client, make_tenant):
    tenant, other = make_tenant(), make_tenant()
    reader = make_key(app, tenant, "tickets:read")
    theirs = make_key(app, other, "tickets:read,tickets:write")
    expired = make_key(app, tenant, "tickets:read", expires_at=utcnow() - timedelta(seconds=1))
    assert call(client, "GET", tenant, "/tickets").status_code == 401
    assert call(client, "GET", tenant, "/tickets", "ldk_not-a-key").status_code == 401
    assert call(client, "GET", tenant, "/tickets", expired).status_code == 401
    assert call(client, "GET", tenant, "/tickets", theirs).status_code == 404
    forbidden = call(client, "POST", tenant, "/tickets", reader, TICKET)
    assert forbidden.status_code == 403 and "tickets:write" in forbidden.json["title"]
    assert count(app, tenant, Ticket) == 0


# --- tickets -------------------------------------------------------------------------------------


def test_a_ticket_created_through_the_api_is_a_refund_request_on_channel_api(app, client, make_tenant):
    tenant = make_tenant()
    key = make_key(app, tenant)
    created = call(client, "POST", tenant, "/tickets", key, TICKET)
    assert created.status_code == 201, created.json
    ticket = TicketOut.model_validate(created.json)
    assert (ticket.reference, ticket.channel, ticket.status) == ("RF-1001", "api", "new")
    assert ticket.amount.amount == "199.00" and ticket.amount.currency == "CNY"
    assert created.headers["Location"].endswith("/api/v1/tickets/1001")
    detail = call(client, "GET", tenant, "/tickets/1001", key)
    assert detail.status_code == 200 and detail.headers["ETag"]
    full = TicketDetail.model_validate(detail.json)
    assert full.thread[0].body == TICKET["description"] and {c.metric for c in full.clocks} >= {
        "first_response"
    }
    with acting_for(app, tenant) as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "ticket.created")).one()
        assert (event.actor_kind, event.actor_label) == ("api_key", "api_key:Dialer")
    assert call(client, "GET", tenant, "/tickets/9999", key).status_code == 404


def test_a_ticket_comes_with_its_files_as_multipart_checked_by_their_bytes(app, client, make_tenant):
    tenant = make_tenant()
    key = make_key(app, tenant)
    headers = {"Authorization": f"Bearer {key}"}
    url = f"/t/{tenant.slug}/api/v1/tickets"
    files = [(io.BytesIO(PDF), "发票.pdf"), (io.BytesIO(b"balance 100 CNY"), "note.txt")]
    created = client.post(url, data={**TICKET, "attachments": files}, headers=headers)
    assert created.status_code == 201, created.json
    with acting_for(app, tenant) as session:
        kept = sorted(session.scalars(select(Attachment.content_type)))
        assert kept == ["application/pdf", "text/plain"]
    liar = client.post(
        url, data={**TICKET, "attachments": [(io.BytesIO(b"MZ\x90\x00"), "invoice.pdf")]}, headers=headers
    )
    assert liar.status_code == 422 and liar.json["errors"][0]["field"] == "attachments"
    assert count(app, tenant, Ticket) == 1


def test_a_retry_with_the_same_idempotency_key_makes_nothing_twice(app, client, make_tenant):
    tenant = make_tenant()
    key = make_key(app, tenant)
    first = call(client, "POST", tenant, "/tickets", key, TICKET, **{"Idempotency-Key": "order-77"})
    again = call(client, "POST", tenant, "/tickets", key, TICKET, **{"Idempotency-Key": "order-77"})
    assert first.status_code == again.status_code == 201
    assert first.json == again.json and count(app, tenant, Ticket) == 1
    other = call(
        client,
        "POST",
        tenant,
        "/tickets",
        key,
        {**TICKET, "name": "韩梅梅"},
        **{"Idempotency-Key": "order-77"},
    )
    assert other.status_code == 409 and count(app, tenant, Ticket) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**TICKET, "name": ""}, "name"),
        ({**TICKET, "reason": "because"}, "reason"),
        ({**TICKET, "phone": "not a phone"}, "phone"),
        ({**TICKET, "amount": "1E+999999999"}, "amount"),
        ({**TICKET, "purchase_date": "2026-02-30"}, "purchase_date"),
        ({**TICKET, "currency": "XXX"}, "currency"),
        ({**TICKET, "surprise": 1}, "surprise"),
        ({k: v for k, v in TICKET.items() if k != "description"}, "description"),
        ({**TICKET, "description": "a\x00b"}, None),
    ],
)
def test_bad_bodies_are_422_with_each_fields_error_and_make_nothing(app, client, make_tenant, body, field):
    tenant = make_tenant()
    key = make_key(app, tenant)
    response = call(client, "POST", tenant, "/tickets", key, body)
    assert 400 <= response.status_code < 500, response.json
    assert response.mimetype == "application/problem+json"
    if field:
        assert field in {error["field"].split(".")[0] for error in response.json["errors"]}
    assert count(app, tenant, Ticket) == 0


@pytest.mark.parametrize("raw", [b"", b"not json", b"[]", b'{"name": ' + b"9" * 5000 + b"}"])
def test_a_body_that_is_not_an_object_is_422(app, client, make_tenant, raw):
    tenant = make_tenant()
    response = call(client, "POST", tenant, "/tickets", make_key(app, tenant), raw)
    assert response.status_code == 422 and response.mimetype == "application/problem+json"


def test_the_list_takes_the_queues_search_and_pages_with_a_next_link(app, client, make_tenant):
    tenant = make_tenant()
    key = make_key(app, tenant)
    for n in range(3):
        call(
            client, "POST", tenant, "/tickets", key, {**TICKET, "phone": f"1380013800{n}", "name": f"客户{n}"}
        )
    found = call(client, "GET", tenant, "/tickets?view=all&q=8001", key).json
    assert [t["reference"] for t in found["items"]] == ["RF-1002"] and found["next"] is None
    assert call(client, "GET", tenant, "/tickets?view=nonsense", key).status_code == 400
    assert call(client, "GET", tenant, "/tickets?after=garbage", key).status_code == 400


# --- customers, leads, the list ------------------------------------------------------------------


def test_a_customer_is_found_by_phone_with_their_tickets(app, client, make_tenant):
    tenant = make_tenant()
    key = make_key(app, tenant)
    call(client, "POST", tenant, "/tickets", key, TICKET)
    found = call(client, "GET", tenant, "/customers?phone=138 0013 8000", key).json["items"]
    assert [c["name"] for c in found] == ["李雷"]
    customer = call(client, "GET", tenant, f"/customers/{found[0]['id']}", key).json
    assert [t["reference"] for t in customer["tickets"]] == ["RF-1001"]


def test_a_lead_from_the_providers_site_keeps_its_consent_as_proof(app, client, make_tenant):
    tenant = make_tenant()
    key = make_key(app, tenant, "leads:read,leads:write,dnc:read,dnc:write")
    body = {
        "name": "赵六",
        "phone": "13900139000",
        "utm_source": "site",
        "consent": {"contact": True, "text": "可以致电联系我", "text_version": "site-3"},
    }
    created = call(client, "POST", tenant, "/leads", key, body)
    assert created.status_code == 201, created.json
    lead = LeadOut.model_validate(created.json)
    assert lead.reference == "LD-1001" and lead.contact_allowed and not lead.marketing_allowed
    with acting_for(app, tenant) as session:
        proof = session.scalars(select(Consent)).one()
        assert (proof.text, proof.text_version, proof.channel) == ("可以致电联系我", "site-3", "api")
    no_proof = call(
        client, "POST", tenant, "/leads", key, {**body, "phone": "13900139001", "consent": {"contact": True}}
    )
    assert no_proof.status_code == 422 and no_proof.json["errors"][0]["field"] == "consent.text"
    no_consent = call(
        client, "POST", tenant, "/leads", key, {**body, "phone": "13900139002", "consent": {"contact": False}}
    )
    assert no_consent.status_code == 201 and no_consent.json["contact_allowed"] is False
    again = call(client, "POST", tenant, "/leads", key, body)
    assert again.json["joined"] is True and again.json["reference"] == "LD-1001"
    assert count(app, tenant, Lead) == 2


def test_the_dialer_checks_the_list_and_a_call_to_a_listed_number_is_refused(app, client, make_tenant):
    tenant = make_tenant()
    key = make_key(app, tenant, "leads:read,leads:write,dnc:read,dnc:write")
    consent = {"contact": True, "evidence_ref": "recorded call 42"}
    call(client, "POST", tenant, "/leads", key, {"name": "赵六", "phone": "13900139000", "consent": consent})
    assert call(client, "GET", tenant, "/dnc/check?phone=13900139000", key).json["allowed"] is True
    added = call(
        client,
        "POST",
        tenant,
        "/dnc",
        key,
        {"phone": "+86 139 0013 9000", "reason": "asked", "source": "call"},
    )
    assert added.status_code == 201
    check = call(client, "GET", tenant, "/dnc/check?phone=13900139000", key).json
    assert check["allowed"] is False and check["reason"] == "asked"
    refused = call(client, "POST", tenant, "/leads/LD-1001/calls", key, {"outcome": "answered"})
    assert refused.status_code == 422 and "do-not-contact" in refused.json["title"]
    removed = call(
        client, "DELETE", tenant, f"/dnc/{added.json['id']}", key, {"reason": "entered by mistake"}
    )
    assert removed.status_code == 200
    assert call(client, "GET", tenant, "/dnc/check?phone=13900139000", key).json["allowed"] is True
    assert call(client, "GET", tenant, "/dnc/check?phone=abc", key).status_code == 400


def test_the_audit_trail_reads_by_sequence_with_audit_read_only(app, client, make_tenant):
    tenant = make_tenant()
    writer = make_key(app, tenant)
    auditor = make_key(app, tenant, "audit:read")
    call(client, "POST", tenant, "/tickets", writer, TICKET)
    assert call(client, "GET", tenant, "/audit/events", writer).status_code == 403
    events = call(client, "GET", tenant, "/audit/events?from=1", auditor).json["items"]
    assert events[0]["seq"] == 1 and "ticket.created" in {e["action"] for e in events}
    assert call(client, "GET", tenant, "/audit/events?from=x", auditor).status_code == 400


def test_the_rate_limit_answers_429_with_retry_after(app, client, make_tenant):
    tenant = make_tenant()
    key = make_key(app, tenant, "tickets:read")
    app.config["API_RATE_LIMIT"] = "2/minute"
    try:
        statuses = [call(client, "GET", tenant, "/tickets", key).status_code for _ in range(3)]
        limited = call(client, "GET", tenant, "/tickets", key)
    finally:
        app.config.pop("API_RATE_LIMIT")
    assert statuses[:2] == [200, 200] and limited.status_code == 429
    assert limited.headers["Retry-After"] and limited.mimetype == "application/problem+json"


# --- the description, the page --------------------------------------------------------------------


def test_the_openapi_document_describes_every_route_and_its_schemas(app, client, make_tenant):
    tenant = make_tenant()
    doc = client.get(f"/t/{tenant.slug}/api/v1/openapi.json").json
    assert doc["openapi"] == "3.1.0"
    documented = {(method.upper(), path) for path, methods in doc["paths"].items() for method in methods}
    routes = {
        (method, rule.rule.split("/api/v1", 1)[1].replace("<int:", "{").replace("<", "{").replace(">", "}"))
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("api.") and rule.endpoint not in ("api.openapi_document", "api.reference")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert routes == documented
    assert {"TicketIn", "TicketOut", "LeadIn", "Problem"} <= set(doc["components"]["schemas"])
    page = client.get(f"/t/{tenant.slug}/api/v1/docs")
    assert page.status_code == 200 and "/tickets/{number}" in page.text and "cdn" not in page.text.lower()


def test_admins_make_and_revoke_keys_on_their_page(app, client, signed_in):
    tenant, _admin = signed_in("admin")
    url = f"/t/{tenant.slug}/admin/api-keys"
    page = client.get(url)
    token = CSRF_RE.search(page.text).group(1)
    made = client.post(
        url, data={"csrf_token": token, "name": "Billing", "scopes": ["tickets:read", "dnc:read"]}
    )
    assert made.status_code == 201
    secret = made.text.split('id="new-key" class="d-block text-break user-select-all">')[1].split("<")[0]
    assert call(client, "GET", tenant, "/dnc/check?phone=13800138000", secret).status_code == 200
    assert secret not in client.get(url).text  # shown once
    missing = client.post(url, data={"csrf_token": token, "name": "x"})
    assert missing.status_code == 400 and "Choose at least one scope" in missing.text
    with acting_for(app, tenant) as session:
        key_id = keys.list_keys()[0].id
        session.rollback()
    client.post(f"{url}/{key_id}/revoke", data={"csrf_token": token})
    assert call(client, "GET", tenant, "/dnc/check?phone=13800138000", secret).status_code == 401


def test_agents_do_not_see_the_api_keys_page(app, client, signed_in):
    tenant, _agent = signed_in("agent")
    assert client.get(f"/t/{tenant.slug}/admin/api-keys").status_code == 403


def test_a_system_replies_notes_and_updates_with_if_match(app, client, make_tenant, make_user):
    tenant = make_tenant()
    agent = make_user(tenant, "agent")
    key = make_key(app, tenant)
    call(client, "POST", tenant, "/tickets", key, TICKET)
    replied = call(
        client, "POST", tenant, "/tickets/1001/replies", key, {"body": "已受理，三个工作日内答复。"}
    )
    assert replied.status_code == 201 and replied.json["public"] is True
    assert (
        call(client, "POST", tenant, "/tickets/1001/notes", key, {"body": "billing checked"}).json["public"]
        is False
    )
    read = call(client, "GET", tenant, "/tickets/1001", key)
    assert read.json["status"] == "open"  # the first reply opens it
    no_etag = call(client, "PATCH", tenant, "/tickets/1001", key, {"assignee_id": agent.id})
    assert no_etag.status_code == 428
    updated = call(
        client,
        "PATCH",
        tenant,
        "/tickets/1001",
        key,
        {"assignee_id": agent.id, "priority": "high"},
        **{"If-Match": read.headers["ETag"]},
    )
    assert updated.status_code == 200, updated.json
    assert (updated.json["assignee_id"], updated.json["priority"]) == (agent.id, "high")
    stale = call(
        client,
        "PATCH",
        tenant,
        "/tickets/1001",
        key,
        {"priority": "low"},
        **{"If-Match": read.headers["ETag"]},
    )
    assert stale.status_code == 412
    with acting_for(app, tenant) as session:
        from crm.tickets.models import ThreadEntry

        reply = session.scalars(select(ThreadEntry).where(ThreadEntry.kind == "public_reply")).one()
        assert reply.details["via"] == "api_key:Dialer"
    other = call(
        client,
        "PATCH",
        tenant,
        "/tickets/1001",
        key,
        {"assignee_id": 99999999},
        **{"If-Match": updated.headers["ETag"]},
    )
    assert other.status_code == 404


def test_billing_reads_a_tickets_refund_and_the_published_policies(app, client, make_tenant):
    tenant = make_tenant()
    key = make_key(app, tenant)
    call(client, "POST", tenant, "/tickets", key, TICKET)
    refund = call(client, "GET", tenant, "/tickets/1001/refund", key)
    assert refund.status_code == 200 and refund.json == {
        "ticket": "RF-1001",
        "decisions": [],
        "payouts": [],
        "escalations": [],
    }
    assert call(client, "GET", tenant, "/tickets/9999/refund", key).status_code == 404
    assert call(client, "GET", tenant, "/policies", key).json == {"items": []}


def test_a_lead_moves_on_through_the_api_with_if_match(app, client, make_tenant):
    tenant = make_tenant()
    key = make_key(app, tenant, "leads:read,leads:write")
    consent = {"contact": True, "evidence_ref": "signed 9"}
    call(client, "POST", tenant, "/leads", key, {"name": "赵六", "phone": "13900139000", "consent": consent})
    read = call(client, "GET", tenant, "/leads/LD-1001", key)
    assert call(client, "PATCH", tenant, "/leads/LD-1001", key, {"stage": "qualified"}).status_code == 428
    moved = call(
        client,
        "PATCH",
        tenant,
        "/leads/LD-1001",
        key,
        {"stage": "qualified"},
        **{"If-Match": read.headers["ETag"]},
    )
    assert moved.status_code == 200 and moved.json["stage"] == "qualified"
    stale = call(
        client,
        "PATCH",
        tenant,
        "/leads/LD-1001",
        key,
        {"stage": "lost"},
        **{"If-Match": read.headers["ETag"]},
    )
    assert stale.status_code == 412
    no_reason = call(
        client,
        "PATCH",
        tenant,
        "/leads/LD-1001",
        key,
        {"stage": "lost"},
        **{"If-Match": moved.headers["ETag"]},
    )
    assert no_reason.status_code == 422 and no_reason.json["errors"][0]["field"] == "lost_reason"


def test_a_form_key_the_test_client_made_none_is_a_refusal_not_a_server_error(app, client, make_tenant):
    """Werkzeug's test client parses a multipart field named "\\n" into a key of None
    (schemathesis found it, posting to /calls): the input guard must not fail on it."""
    tenant = make_tenant()
    key = make_key(app, tenant, "calls:write")
    response = client.post(
        f"/t/{tenant.slug}/api/v1/calls",
        data={"\n": None},
        content_type="multipart/form-data",
        headers={"Authorization": f"Bearer {key}"},
    )
    assert 400 <= response.status_code < 500
