"""Call records from a dialer: filed on the open ticket or lead of the customer's number,
kept unmatched (and filed or dismissed by staff) otherwise; recordings uploaded or given
by URL with their SHA-256 (fetched from a real HTTP server on loopback); idempotent
retries; scopes and other tenants. Also the API's payouts, checkpoints and reports."""

import hashlib
import io
import threading
import wave
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import func, select

from crm.api.schemas import DialerCallOut
from crm.audit.models import AuditEvent
from crm.calls.models import CallRecord
from crm.columns import utcnow
from crm.files.models import Attachment
from crm.sla.models import Clock
from tests.conftest import CSRF_RE, acting_for, login
from tests.test_api import TICKET, call, count, make_key
from tests.test_refunds import PARTIAL, WEDNESDAY_10AM, decide, desk, received, staff_client  # noqa: F401
from tests.test_sla import shanghai, travel

CUSTOMER = "+8613800138000"
DIALER = "+862161234567"


def wav_bytes(seconds: float = 0.1) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x00" * int(8000 * seconds))
    return buffer.getvalue()


def dialer_call(**changes) -> dict:
    return {
        "direction": "outbound",
        "from": DIALER,
        "to": "138 0013 8000",
        "started_at": (utcnow() - timedelta(minutes=5)).isoformat(),
        "duration_seconds": 95,
        "outcome": "answered",
        "note": "客户确认收到退款说明",
        "external_id": "dialer-1",
        **changes,
    }


def audit_actions(app, tenant, subject_type: str) -> list[str]:
    with acting_for(app, tenant) as session:
        query = (
            select(AuditEvent.action).where(AuditEvent.subject_type == subject_type).order_by(AuditEvent.seq)
        )
        return list(session.scalars(query))


@pytest.fixture
def dialer(app, make_tenant):
    tenant = make_tenant()
    key = make_key(app, tenant, "tickets:read,tickets:write,leads:read,leads:write,calls:write")
    return tenant, key


def test_an_answered_call_is_filed_on_the_open_ticket_and_meets_its_first_response(app, client, dialer):
    tenant, key = dialer
    assert call(client, "POST", tenant, "/tickets", key, TICKET).status_code == 201
    posted = call(client, "POST", tenant, "/calls", key, dialer_call())
    assert posted.status_code == 201, posted.json
    record = DialerCallOut.model_validate(posted.json)
    assert (record.state, record.ticket, record.lead, record.to) == ("filed", "RF-1001", None, CUSTOMER)
    assert posted.headers["Location"].endswith(f"/api/v1/calls/{record.id}")

    ticket = call(client, "GET", tenant, "/tickets/1001", key).json
    logged = [entry for entry in ticket["thread"] if entry["kind"] == "call_log"]
    assert len(logged) == 1 and logged[0]["body"] == "客户确认收到退款说明"
    first_response = next(c for c in ticket["clocks"] if c["metric"] == "first_response")
    assert first_response["state"] == "met"
    assert audit_actions(app, tenant, "call") == ["call.received", "call.filed"]
    with acting_for(app, tenant) as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "ticket.call_logged")).one()
        assert (event.actor_kind, event.data["call_id"]) == ("api_key", record.id)
    assert call(client, "GET", tenant, f"/calls/{record.id}", key).json == posted.json


def test_a_call_to_a_leads_number_is_filed_on_the_lead_and_is_its_first_contact(app, client, dialer):
    tenant, key = dialer
    consent = {"contact": True, "text": "可以致电联系我"}
    call(client, "POST", tenant, "/leads", key, {"name": "赵六", "phone": "13900139000", "consent": consent})
    posted = call(client, "POST", tenant, "/calls", key, dialer_call(to="13900139000"))
    assert posted.status_code == 201 and posted.json["lead"] == "LD-1001"
    lead = call(client, "GET", tenant, "/leads/LD-1001", key).json
    assert lead["stage"] == "contacted" and lead["first_contacted_at"]


def test_a_call_nobody_claims_waits_for_staff_who_file_it_or_dismiss_it(app, client, dialer, make_user):
    tenant, key = dialer
    call(client, "POST", tenant, "/tickets", key, TICKET)
    stranger = call(client, "POST", tenant, "/calls", key, dialer_call(to="13700137000", external_id="d-2"))
    wrong = call(client, "POST", tenant, "/calls", key, dialer_call(to="13600136000", external_id="d-3"))
    assert stranger.json["state"] == "unmatched"
    assert stranger.json["unmatched_reason"] == "No open ticket or lead has this number."
    listed = call(client, "GET", tenant, "/calls?state=unmatched", key).json["items"]
    assert [item["external_id"] for item in listed] == ["d-3", "d-2"]

    agent = make_user(tenant, "agent")
    login(client, tenant, agent)
    page = client.get(f"/t/{tenant.slug}/calls")
    assert page.status_code == 200 and "+8613700137000" in page.text and "No open ticket or lead" in page.text
    token = CSRF_RE.search(page.text).group(1)
    unknown = client.post(
        f"/t/{tenant.slug}/calls/{stranger.json['id']}/file",
        data={"csrf_token": token, "reference": "RF-9999"},
    )
    assert unknown.status_code == 422 and "No ticket or lead has this reference." in unknown.text
    filed = client.post(
        f"/t/{tenant.slug}/calls/{stranger.json['id']}/file",
        data={"csrf_token": token, "reference": "rf-1001"},
        follow_redirects=True,
    )
    assert "The call is filed." in filed.text
    no_reason = client.post(f"/t/{tenant.slug}/calls/{wrong.json['id']}/dismiss", data={"csrf_token": token})
    assert no_reason.status_code == 400
    client.post(
        f"/t/{tenant.slug}/calls/{wrong.json['id']}/dismiss", data={"csrf_token": token, "reason": "拨错号码"}
    )
    again = client.post(
        f"/t/{tenant.slug}/calls/{wrong.json['id']}/file", data={"csrf_token": token, "reference": "RF-1001"}
    )
    assert again.status_code == 409

    assert call(client, "GET", tenant, "/calls?state=unmatched", key).json["items"] == []
    filed_record = call(client, "GET", tenant, f"/calls/{stranger.json['id']}", key).json
    assert (filed_record["state"], filed_record["ticket"]) == ("filed", "RF-1001")
    dismissed = call(client, "GET", tenant, f"/calls/{wrong.json['id']}", key).json
    assert dismissed["state"] == "dismissed"
    assert "call.dismissed" in audit_actions(app, tenant, "call")
    everything = client.get(f"/t/{tenant.slug}/calls?state=all").text
    assert "RF-1001" in everything and "拨错号码" in everything


def test_an_outbound_call_to_a_lead_without_consent_is_kept_unmatched_with_the_reason(app, client, dialer):
    tenant, key = dialer
    call(
        client,
        "POST",
        tenant,
        "/leads",
        key,
        {"name": "赵六", "phone": "13900139000", "consent": {"contact": False}},
    )
    posted = call(client, "POST", tenant, "/calls", key, dialer_call(to="13900139000"))
    assert posted.status_code == 201 and posted.json["state"] == "unmatched"
    assert "no consent on record" in posted.json["unmatched_reason"]
    assert call(client, "GET", tenant, "/leads/LD-1001", key).json["stage"] == "new"


def test_several_open_tickets_for_one_number_are_left_for_staff_unless_the_dialer_names_one(
    app, client, dialer
):
    tenant, key = dialer
    call(client, "POST", tenant, "/tickets", key, TICKET)
    call(client, "POST", tenant, "/tickets", key, {**TICKET, "description": "第二个问题"})
    ambiguous = call(client, "POST", tenant, "/calls", key, dialer_call())
    assert (
        ambiguous.json["state"] == "unmatched"
        and "several open tickets" in ambiguous.json["unmatched_reason"]
    )
    named = call(client, "POST", tenant, "/calls", key, dialer_call(reference="RF-1002"))
    assert named.json["ticket"] == "RF-1002"
    unknown = call(client, "POST", tenant, "/calls", key, dialer_call(reference="RF-4242"))
    assert unknown.status_code == 422 and unknown.json["errors"][0]["field"] == "reference"


def test_a_retry_with_the_same_idempotency_key_keeps_one_call(app, client, dialer):
    tenant, key = dialer
    body = dialer_call()
    first = call(client, "POST", tenant, "/calls", key, body, **{"Idempotency-Key": "call-77"})
    retry = call(client, "POST", tenant, "/calls", key, body, **{"Idempotency-Key": "call-77"})
    assert first.status_code == retry.status_code == 201 and first.json == retry.json
    assert count(app, tenant, CallRecord) == 1
    other = call(
        client,
        "POST",
        tenant,
        "/calls",
        key,
        dialer_call(duration_seconds=3),
        **{"Idempotency-Key": "call-77"},
    )
    assert other.status_code == 409


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"direction": "sideways"}, "direction"),
        ({"outcome": "exploded"}, "outcome"),
        ({"duration_seconds": -1}, "duration_seconds"),
        ({"duration_seconds": 10**12}, "duration_seconds"),
        ({"started_at": "2026-12-04T09:00:00"}, "started_at"),
        ({"to": "not a number"}, "to"),
        ({"from": "\x00"}, "from"),
        ({"recording_url": "http://example.test/r.wav"}, "recording_sha256"),
        ({"recording_url": "ftp://example.test/r.wav", "recording_sha256": "a" * 64}, "recording_url"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_call_records_are_422_with_the_field_and_keep_nothing(app, client, dialer, changes, field):
    tenant, key = dialer
    refused = call(client, "POST", tenant, "/calls", key, dialer_call(**changes))
    assert refused.status_code == 422, refused.json
    assert field in {error["field"] for error in refused.json["errors"]}
    assert count(app, tenant, CallRecord) == 0


def test_a_call_in_the_future_is_refused(app, client, dialer):
    tenant, key = dialer
    later = (utcnow() + timedelta(hours=2)).isoformat()
    refused = call(client, "POST", tenant, "/calls", key, dialer_call(started_at=later))
    assert refused.status_code == 422 and refused.json["errors"][0]["field"] == "started_at"


def test_an_uploaded_recording_is_checked_by_its_bytes_and_attached_to_the_call(app, client, dialer):
    tenant, key = dialer
    call(client, "POST", tenant, "/tickets", key, TICKET)
    fields = {name: str(value) for name, value in dialer_call().items()}
    audio = wav_bytes()
    posted = client.post(
        f"/t/{tenant.slug}/api/v1/calls",
        data={**fields, "recording": (io.BytesIO(audio), "call.wav")},
        headers={"Authorization": f"Bearer {key}"},
        content_type="multipart/form-data",
    )
    assert posted.status_code == 201, posted.json
    recording = posted.json["recording"]
    assert recording["state"] == "stored" and recording["sha256"] == hashlib.sha256(audio).hexdigest()
    with acting_for(app, tenant) as session:
        attached = session.scalars(select(Attachment)).one()
        assert (attached.sha256, attached.content_type) == (recording["sha256"], "audio/x-wav")

    liar = client.post(
        f"/t/{tenant.slug}/api/v1/calls",
        data={**fields, "recording": (io.BytesIO(b"%PDF-1.4 not audio"), "call.wav")},
        headers={"Authorization": f"Bearer {key}"},
        content_type="multipart/form-data",
    )
    assert liar.status_code == 422 and liar.json["errors"][0]["field"] == "recording"
    assert count(app, tenant, CallRecord) == 1


class RecordingServer:
    """Serves one file on loopback, as a dialer's storage would."""

    def __init__(self, content: bytes):
        outer = self
        self.requests = 0

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "audio/wav")
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/rec/call-1.wav"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recording_server(app):
    app.config["WEBHOOKS_ALLOW_PRIVATE"] = True  # the dialer's storage is on loopback here
    server = RecordingServer(wav_bytes())
    yield server
    server.close()
    app.config.pop("WEBHOOKS_ALLOW_PRIVATE")


def test_a_recording_by_url_is_fetched_and_kept_only_if_its_sha256_matches(
    app, client, dialer, recording_server
):
    tenant, key = dialer
    call(client, "POST", tenant, "/tickets", key, TICKET)
    right = hashlib.sha256(wav_bytes()).hexdigest()
    posted = call(
        client,
        "POST",
        tenant,
        "/calls",
        key,
        dialer_call(recording_url=recording_server.url, recording_sha256=right),
    )
    assert posted.status_code == 201 and posted.json["recording"]["state"] == "pending"
    # Without Redis the job runs in-process right after the commit.
    fetched = call(client, "GET", tenant, f"/calls/{posted.json['id']}", key).json["recording"]
    assert (fetched["state"], fetched["sha256"], fetched["size"]) == ("stored", right, len(wav_bytes()))
    with acting_for(app, tenant) as session:
        assert session.scalars(select(Attachment.sha256)).one() == right

    wrong = call(
        client,
        "POST",
        tenant,
        "/calls",
        key,
        dialer_call(recording_url=recording_server.url, recording_sha256="0" * 64, external_id="d-9"),
    )
    kept = call(client, "GET", tenant, f"/calls/{wrong.json['id']}", key).json["recording"]
    assert kept["state"] == "failed" and "do not have the SHA-256 given" in kept["error"]
    assert recording_server.requests == 2
    assert "call.recording_failed" in audit_actions(app, tenant, "call")


def test_recording_urls_into_our_own_network_are_refused(app, client, dialer):
    tenant, key = dialer
    body = dialer_call(recording_url="http://127.0.0.1:6379/", recording_sha256="a" * 64)
    refused = call(client, "POST", tenant, "/calls", key, body)
    assert refused.status_code == 422 and refused.json["errors"][0]["field"] == "recording_url"


def test_calls_need_calls_write_and_stay_in_their_tenant(app, client, dialer, make_tenant):
    tenant, key = dialer
    reader = make_key(app, tenant, "tickets:read")
    assert call(client, "POST", tenant, "/calls", reader, dialer_call()).status_code == 403
    posted = call(client, "POST", tenant, "/calls", key, dialer_call())
    other = make_tenant()
    other_key = make_key(app, other, "calls:write,tickets:write")
    assert call(client, "GET", other, f"/calls/{posted.json['id']}", other_key).status_code == 404
    assert call(client, "GET", other, "/calls", other_key).json["items"] == []
    call(client, "POST", other, "/tickets", other_key, TICKET)
    # The other tenant's customer has the same number: its call stays there.
    theirs = call(client, "POST", other, "/calls", other_key, dialer_call())
    assert theirs.json["ticket"] == "RF-1001"
    assert (
        call(client, "GET", tenant, "/calls?state=unmatched", key).json["items"][0]["id"] == posted.json["id"]
    )
    assert call(client, "GET", tenant, f"/calls/{theirs.json['id']}", key).status_code == 404


def test_staff_of_another_tenant_cannot_file_or_read_a_call(app, client, dialer, make_tenant, make_user):
    tenant, key = dialer
    posted = call(client, "POST", tenant, "/calls", key, dialer_call())
    other = make_tenant()
    login(client, other, make_user(other, "agent"))
    token = CSRF_RE.search(client.get(f"/t/{other.slug}/calls").text).group(1)
    refused = client.post(
        f"/t/{other.slug}/calls/{posted.json['id']}/dismiss", data={"csrf_token": token, "reason": "x"}
    )
    assert refused.status_code == 404
    assert client.get(f"/t/{tenant.slug}/calls").status_code in (302, 404)


def test_auditors_read_the_calls_page_but_cannot_file(app, client, dialer, make_user):
    tenant, key = dialer
    posted = call(client, "POST", tenant, "/calls", key, dialer_call())
    login(client, tenant, make_user(tenant, "auditor"))
    page = client.get(f"/t/{tenant.slug}/calls")
    assert page.status_code == 200 and 'name="reference"' not in page.text
    token = CSRF_RE.search(client.get(f"/t/{tenant.slug}/account").text).group(1)
    refused = client.post(
        f"/t/{tenant.slug}/calls/{posted.json['id']}/file", data={"csrf_token": token, "reference": "RF-1001"}
    )
    assert refused.status_code == 403


# --- payouts, checkpoints and reports -------------------------------------------------------


def test_billing_records_a_payout_through_the_api_once(app, client, desk):  # noqa: F811
    tenant = desk.tenant
    with travel(WEDNESDAY_10AM):
        ticket = received(app, tenant)
        assert (
            decide(staff_client(app, tenant, desk.agent), tenant, ticket.number, **PARTIAL).status_code == 302
        )
        key = make_key(app, tenant, "tickets:read,tickets:write")
    with travel(shanghai(2026, 9, 18, 10)):
        body = {
            "amount": "75.50",
            "method": "alipay",
            "reference": "ALI-7550",
            "paid_at": "2026-09-18T01:30:00Z",
        }
        too_much = call(
            client, "POST", tenant, f"/tickets/{ticket.number}/payouts", key, {**body, "amount": "80"}
        )
        assert too_much.status_code == 422 and "more than is still owed" in too_much.json["title"]
        headers = {"Idempotency-Key": "pay-7550"}
        paid = call(client, "POST", tenant, f"/tickets/{ticket.number}/payouts", key, body, **headers)
        retry = call(client, "POST", tenant, f"/tickets/{ticket.number}/payouts", key, body, **headers)
        assert paid.status_code == retry.status_code == 201 and paid.json == retry.json
        assert paid.json["paid_in_full"] is True and paid.json["amount"] == {
            "amount": "75.50",
            "currency": "CNY",
        }
        refund = call(client, "GET", tenant, f"/tickets/{ticket.number}/refund", key).json
        assert [p["reference"] for p in refund["payouts"]] == ["ALI-7550"]
        with acting_for(app, tenant) as session:
            event = session.scalars(
                select(AuditEvent).where(AuditEvent.action == "refund.payout_recorded")
            ).one()
            assert event.actor_kind == "api_key"
            payout_clock = session.scalars(select(Clock).where(Clock.metric == "payout")).one()
            assert payout_clock.state == "met"
        reader = make_key(app, tenant, "tickets:read")
        assert (
            call(client, "POST", tenant, f"/tickets/{ticket.number}/payouts", reader, body).status_code == 403
        )


def test_checkpoints_and_reports_are_read_with_their_own_scopes(app, client, make_tenant, runner):
    tenant = make_tenant()
    writer = make_key(app, tenant)
    call(client, "POST", tenant, "/tickets", writer, TICKET)
    result = runner.invoke(args=["audit", "checkpoint", "--tenant", tenant.slug])
    assert result.exit_code == 0, result.output
    auditor = make_key(app, tenant, "audit:read")
    assert call(client, "GET", tenant, "/audit/checkpoints", writer).status_code == 403
    listed = call(client, "GET", tenant, "/audit/checkpoints", auditor).json
    assert len(listed["items"]) == 1 and listed["items"][0]["tenant"] == tenant.slug
    assert listed["items"][0]["key_id"] in {key["key_id"] for key in listed["keys"]}

    manager = make_key(app, tenant, "reports:read")
    assert call(client, "GET", tenant, "/reports/sla", writer).status_code == 403
    today = utcnow().date().isoformat()
    sla = call(
        client, "GET", tenant, f"/reports/sla?period=custom&first_day={today}&last_day={today}", manager
    )
    assert sla.status_code == 200 and sla.json["tables"][0]["table"] == "sla"
    complaints = call(client, "GET", tenant, "/reports/complaints?period=this_month", manager)
    assert complaints.status_code == 200 and complaints.json["from"].endswith("-01")
    assert call(client, "GET", tenant, "/reports/nothing", manager).status_code == 404
    backwards = call(
        client, "GET", tenant, "/reports/sla?period=custom&first_day=2026-02-01&last_day=2026-01-01", manager
    )
    assert backwards.status_code == 400 and backwards.json["errors"][0]["field"] == "last_day"
    assert call(client, "GET", tenant, "/reports/leads?period=yesterday", manager).status_code == 400


def test_the_count_of_calls_is_per_tenant(app, dialer):
    tenant, _key = dialer
    with acting_for(app, tenant) as session:
        assert session.scalar(select(func.count()).select_from(CallRecord)) == 0
