"""Webhooks against a real HTTP receiver on loopback: signed deliveries that verify with
the published algorithm, retries after a failure with the same webhook-id, nothing sent
for a rolled-back change, private addresses refused, a receiver failing for a day
disabled and its admins told, and the admins' page with its log and replay."""

import base64
import hashlib
import hmac
import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import time_machine
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from crm.audit.service import Actor
from crm.columns import utcnow
from crm.errors import DomainError
from crm.notify.models import OutboxMessage
from crm.tickets import service as tickets
from crm.webhooks import service
from crm.webhooks.models import WebhookDelivery, WebhookEndpoint
from tests.conftest import CSRF_RE, acting_for
from tests.test_ticket_service import refund_request

OPERATOR = Actor.operator("test")


class Receiver:
    """An HTTP server on loopback that records what it gets and answers from a script."""

    def __init__(self):
        self.received: list[tuple[dict, bytes]] = []
        self.answers: list[int] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = outer.answers.pop(0) if outer.answers else 200
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"thanks" if status < 300 else b"oops")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(app):
    app.config["WEBHOOKS_ALLOW_PRIVATE"] = True  # the receiver is on loopback
    server = Receiver()
    yield server
    server.close()
    app.config.pop("WEBHOOKS_ALLOW_PRIVATE")


def endpoint_for(app, tenant, url, events=("ticket.created",)) -> tuple[int, str]:
    with acting_for(app, tenant) as session:
        endpoint = service.create_endpoint(url, list(events), actor=OPERATOR)
        session.commit()
        return endpoint.id, endpoint.secret


def submit(app, tenant, nonce="n1"):
    with acting_for(app, tenant) as session:
        ticket = tickets.submit_refund_request(refund_request(), nonce=nonce, ip=None).ticket
        session.commit()
        return ticket.reference


def test_a_delivery_is_signed_and_verifies_with_the_published_algorithm(app, make_tenant, receiver):
    tenant = make_tenant()
    _id, secret = endpoint_for(app, tenant, receiver.url)
    reference = submit(app, tenant)
    [(headers, body)] = receiver.received
    payload = json.loads(body)
    assert payload["type"] == "ticket.created" and payload["data"]["subject"]["reference"] == reference
    assert payload["data"]["subject"]["url"].endswith("/api/v1/tickets/1001")
    assert "13800138000" not in body.decode()  # digests, not personal data
    assert Webhook(secret).verify(body, headers)["type"] == "ticket.created"
    # By hand: base64(HMAC-SHA256(secret, "{id}.{timestamp}.{body}")), after "v1,".
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert headers["webhook-signature"] == f"v1,{expected}"


def test_a_failed_delivery_is_retried_with_the_same_webhook_id(app, make_tenant, receiver):
    tenant = make_tenant()
    endpoint_for(app, tenant, receiver.url)
    receiver.answers = [500]
    submit(app, tenant)
    assert len(receiver.received) == 1
    with acting_for(app, tenant) as session:
        delivery = session.scalars(select(WebhookDelivery)).one()
        assert (delivery.status, delivery.attempts) == ("pending", 1)
        due = delivery.next_attempt_at
    with app.app_context():
        assert service.deliver_due(due - timedelta(seconds=1)) == 0
        with time_machine.travel(due + timedelta(seconds=1), tick=False):
            assert service.deliver_due() == 1
    assert len(receiver.received) == 2
    assert receiver.received[0][0]["webhook-id"] == receiver.received[1][0]["webhook-id"]
    with acting_for(app, tenant) as session:
        delivery = session.scalars(select(WebhookDelivery)).one()
        assert (delivery.status, delivery.attempts) == ("delivered", 2)


def test_nothing_is_delivered_for_a_change_that_rolled_back(app, make_tenant, receiver):
    tenant = make_tenant()
    endpoint_for(app, tenant, receiver.url)
    with acting_for(app, tenant) as session:
        tickets.submit_refund_request(refund_request(), nonce="rolled", ip=None)
        session.rollback()
    with acting_for(app, tenant) as session:
        assert session.scalars(select(WebhookDelivery)).all() == []
    assert receiver.received == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/x",
        "http://10.1.2.3/x",
        "http://169.254.169.254/latest",
        "http://[::1]/x",
        "ftp://example.com/x",
    ],
)
def test_private_loopback_and_link_local_addresses_are_refused(app, make_tenant, url):
    tenant = make_tenant()
    with acting_for(app, tenant), pytest.raises(DomainError):
        service.create_endpoint(url, ["ticket.created"], actor=OPERATOR)


def test_a_receiver_failing_for_a_day_is_disabled_and_the_admins_told(app, make_tenant, make_user, receiver):
    tenant = make_tenant()
    admin = make_user(tenant, "admin")
    endpoint_id, _secret = endpoint_for(app, tenant, receiver.url)
    with acting_for(app, tenant) as session:
        session.get(WebhookEndpoint, endpoint_id).failing_since = utcnow() - timedelta(hours=25)
        session.commit()
    receiver.answers = [503]
    submit(app, tenant)
    with acting_for(app, tenant) as session:
        endpoint = session.get(WebhookEndpoint, endpoint_id)
        assert endpoint.active is False and endpoint.disabled_at is not None
        [mail] = session.scalars(select(OutboxMessage).where(OutboxMessage.to_address == admin.email)).all()
        assert "Webhook disabled" in mail.subject


def test_admins_add_an_endpoint_see_the_log_and_replay(app, client, signed_in, receiver):
    tenant, _admin = signed_in("admin")
    url = f"/t/{tenant.slug}/admin/webhooks"
    token = CSRF_RE.search(client.get(url).text).group(1)
    added = client.post(url, data={"csrf_token": token, "url": receiver.url, "events": ["ticket.created"]})
    assert added.status_code == 201 and 'id="new-secret"' in added.text
    assert (
        client.post(
            url, data={"csrf_token": token, "url": "not a url", "events": ["ticket.created"]}
        ).status_code
        == 422
    )
    submit(app, tenant)
    with acting_for(app, tenant) as session:
        endpoint = session.scalars(select(WebhookEndpoint)).one()
        delivery = session.scalars(select(WebhookDelivery)).one()
        endpoint_id, delivery_id = endpoint.id, delivery.id
    log = client.get(f"{url}/{endpoint_id}")
    assert "ticket.created" in log.text and "200" in log.text
    client.post(f"{url}/{endpoint_id}/deliveries/{delivery_id}/replay", data={"csrf_token": token})
    assert len(receiver.received) == 2
    assert client.get(f"{url}/999999").status_code == 404
