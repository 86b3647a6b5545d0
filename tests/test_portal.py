"""The customer's side: the hosted refund form, the receipt, and the tracking page."""

import re
from dataclasses import dataclass
from io import BytesIO
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update
from werkzeug.test import EnvironBuilder

from crm.audit.service import verify_chain
from crm.provisioning.models import TenantSettings
from crm.sla.businesstime import timeline_for
from crm.sla.clocks import clocks_of
from crm.sla.rules import default_calendar
from crm.tickets import service as tickets
from crm.tickets.models import Status, Ticket
from tests.conftest import CSRF_RE, acting_for, login
from tests.test_ticket_service import refund_request

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n"
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489") + b"\x00" * 32
TOKEN_RE = re.compile(r'name="submission_token" type="hidden" value="([^"]+)"')
LINK_RE = re.compile(r'id="tracking-link">([^<]+)<')


def form_tokens(client, slug: str) -> dict:
    page = client.get(f"/t/{slug}/refund")
    assert page.status_code == 200
    return {
        "csrf_token": CSRF_RE.search(page.text).group(1),
        "submission_token": TOKEN_RE.search(page.text).group(1),
    }


def good_fields(**overrides) -> dict:
    return {
        "name": "李雷",
        "phone": "13800138000",
        "email": "lilei@example.test",
        "account_ref": "ACC-778",
        "purchase_date": "2026-10-01",
        "amount": "199.00",
        "reason": "unused_balance",
        "description": "号码已注销，剩余话费 199 元请退回。",
        "consent": "y",
        **overrides,
    }


def send_form(client, slug: str, fields: dict, files=(), tokens: dict | None = None):
    data = {**(tokens or form_tokens(client, slug)), **fields}
    if files:
        data["attachments"] = [(BytesIO(content), name) for name, content in files]
    # Built by hand so the encoded body (a temporary file past 500 KB) is closed after.
    environ = EnvironBuilder(path=f"/t/{slug}/refund", method="POST", data=data).get_environ()
    try:
        return client.open(environ)
    finally:
        environ["wsgi.input"].close()


def ticket_count(app, tenant) -> int:
    with acting_for(app, tenant) as session:
        return session.scalar(select(func.count()).select_from(Ticket))


def test_customer_submits_and_gets_a_receipt_with_reference_deadline_and_link(app, client, make_tenant):
    tenant = make_tenant()
    response = send_form(
        client, tenant.slug, good_fields(), files=[("invoice.pdf", PDF), ("screen.png", PNG)]
    )
    assert response.status_code == 302
    receipt = client.get(response.headers["Location"])
    assert "RF-1001" in receipt.text
    # The deadlines are the SLA clocks' own: 8 and 45 business hours on the default
    # calendar (Mon–Fri 09:00–18:00, Asia/Shanghai), shown in the tenant's zone.
    with acting_for(app, tenant):
        ticket = tickets.ticket_by_number(1001)
        first, resolution = ticket.respond_by, max(clock.due_at for clock in clocks_of("ticket", ticket.id))
        calendar = timeline_for(default_calendar("Asia/Shanghai"))
        assert calendar.minutes_between(ticket.created_at, first) == 8 * 60
        assert calendar.minutes_between(ticket.created_at, resolution) == 45 * 60
    for label, due in (("First answer by", first), ("Decision on your request by", resolution)):
        shown = due.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%a, %b %-d, %Y %H:%M")
        assert re.search(f"{label}</dt>\\s*<dd[^>]*>{shown}", receipt.text), (label, shown)
    link = LINK_RE.search(receipt.text).group(1)
    tracking = client.get(link.replace("http://localhost", ""))
    assert tracking.status_code == 200
    assert "RF-1001" in tracking.text and "号码已注销" in tracking.text
    assert "invoice.pdf" in tracking.text and "screen.png" in tracking.text
    with acting_for(app, tenant):
        ticket = tickets.ticket_by_number(1001)
        assert ticket.amount_minor == 19900 and ticket.currency == "CNY"
        assert ticket.customer.locale == "en"  # the page was in English
        assert verify_chain().ok


def test_the_form_is_in_chinese_for_a_chinese_browser(client, make_tenant):
    tenant = make_tenant()
    page = client.get(f"/t/{tenant.slug}/refund", headers={"Accept-Language": "zh-CN"})
    assert "申请退款" in page.text


@pytest.mark.parametrize(
    "fields, files, message",
    [
        ({"name": "", "phone": "", "description": "", "consent": ""}, (), "This field is required."),
        ({"name": "x" * 201}, (), "Use at most 200 characters."),
        ({"description": "x" * 20_001}, (), "Use at most 20000 characters."),
        ({"phone": "12345"}, (), "Enter a valid phone number."),
        ({"email": "nobody@"}, (), "Enter a valid email address."),
        ({"purchase_date": "2999-01-01"}, (), "cannot be in the future"),
        ({"amount": "-5"}, (), "cannot be negative"),
        ({"amount": "ten yuan"}, (), "Enter an amount such as 199.00."),
        ({"reason": "bored"}, (), "Not a valid choice."),
        ({"consent": ""}, (), "Please agree"),
        ({}, [(f"f{n}.pdf", PDF) for n in range(6)], "Attach at most 5 files."),
        ({}, [("huge.pdf", PDF + b"0" * (11 * 2**20))], "larger than 10 MB"),
        ({}, [("invoice.pdf", b"MZ\x90\x00" + b"\x00" * 500)], "not an accepted file type"),
    ],
)
def test_bad_input_gets_a_clear_4xx_keeps_what_was_typed_and_creates_nothing(
    app, client, make_tenant, fields, files, message
):
    tenant = make_tenant()
    response = send_form(client, tenant.slug, good_fields(**fields), files=files)
    assert 400 <= response.status_code < 500
    assert message in response.text
    if fields.get("name", "李雷") == "李雷":
        assert "李雷" in response.text  # what the person typed is still there
    assert ticket_count(app, tenant) == 0


def test_a_double_submit_makes_one_ticket(app, client, make_tenant):
    tenant = make_tenant()
    tokens = form_tokens(client, tenant.slug)
    first = send_form(client, tenant.slug, good_fields(), tokens=tokens)
    second = send_form(client, tenant.slug, good_fields(), tokens=tokens)
    assert first.status_code == second.status_code == 302
    assert first.headers["Location"] == second.headers["Location"]
    assert ticket_count(app, tenant) == 1


def test_a_forged_or_expired_submission_token_is_refused(app, client, make_tenant):
    tenant = make_tenant()
    tokens = {**form_tokens(client, tenant.slug), "submission_token": "forged"}
    response = send_form(client, tenant.slug, good_fields(), tokens=tokens)
    assert response.status_code == 400 and "expired" in response.text
    assert ticket_count(app, tenant) == 0


def test_the_honeypot_is_refused_and_creates_nothing(app, client, make_tenant):
    tenant = make_tenant()
    response = send_form(client, tenant.slug, good_fields(website="http://spam.example"))
    assert response.status_code == 400
    assert ticket_count(app, tenant) == 0


def test_submissions_are_rate_limited_per_tenant_and_address(app, client, make_tenant):
    tenant, other = make_tenant(), make_tenant()
    with acting_for(app, tenant) as session:
        session.execute(update(TenantSettings).values(form_submissions_per_hour=2))
        session.commit()
    statuses = [
        send_form(client, tenant.slug, good_fields(phone=f"1380013800{n}")).status_code for n in range(3)
    ]
    assert statuses == [302, 302, 429]
    limited = send_form(client, tenant.slug, good_fields(name="韩梅梅"))
    assert limited.status_code == 429 and "send it again in" in limited.text
    assert int(limited.headers["Retry-After"]) > 0
    assert 'value="韩梅梅"' in limited.text  # what they typed is kept
    assert f'action="/t/{tenant.slug}/refund"' in limited.text or '<form method="post"' in limited.text
    assert ticket_count(app, tenant) == 2
    assert send_form(client, other.slug, good_fields()).status_code == 302  # another tenant's limit


def test_html_in_any_field_is_shown_as_text(app, client, make_tenant):
    tenant = make_tenant()
    script = "<script>alert('x')</script><b>bold</b>"
    response = send_form(
        client, tenant.slug, good_fields(name=script, description=script, account_ref=script)
    )
    receipt = client.get(response.headers["Location"])
    tracking = client.get(LINK_RE.search(receipt.text).group(1).replace("http://localhost", ""))
    for page in (receipt, tracking):
        assert "<script>alert" not in page.text
    assert "&lt;script&gt;alert" in tracking.text


@dataclass(frozen=True)
class Submitted:
    number: int
    reference: str
    tracking_token: str


def submitted(app, tenant, **fields) -> Submitted:
    with acting_for(app, tenant) as session:
        submission = tickets.submit_refund_request(refund_request(**fields), nonce="n", ip=None)
        session.commit()
        return Submitted(submission.ticket.number, submission.ticket.reference, submission.tracking_token)


def test_a_wrong_token_is_a_plain_404_and_never_opens_another_ticket(app, client, make_tenant):
    tenant, other = make_tenant(), make_tenant()
    mine = submitted(app, tenant)
    theirs = submitted(app, other)
    assert client.get(f"/t/{tenant.slug}/track/not-a-token").status_code == 404
    assert (
        client.get(f"/t/{tenant.slug}/track/{theirs.tracking_token}").status_code == 404
    )  # other tenant's link
    assert client.get(f"/t/{other.slug}/track/{mine.tracking_token}").status_code == 404
    page = client.get(f"/t/{tenant.slug}/track/{mine.tracking_token}")
    assert page.status_code == 200 and mine.reference in page.text


def test_customer_replies_with_evidence_and_the_waiting_ticket_reopens(app, client, make_tenant, make_user):
    from crm.auth.models import User

    tenant = make_tenant()
    agent = make_user(tenant, "agent")
    submission = submitted(app, tenant)
    with acting_for(app, tenant) as session:
        ticket = tickets.ticket_by_number(submission.number)
        tickets.request_information(
            ticket, "Please send the top-up receipt.", user=session.get(User, agent.id), ip=None
        )
        session.commit()
    url = f"/t/{tenant.slug}/track/{submission.tracking_token}"
    page = client.get(url)
    assert "Waiting for your answer" in page.text and "Please send the top-up receipt." in page.text
    csrf = CSRF_RE.search(page.text).group(1)
    response = client.post(
        f"{url}/reply",
        data={"csrf_token": csrf, "body": "Here it is.", "attachments": [(BytesIO(PDF), "receipt.pdf")]},
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    page = client.get(url)
    assert "Here it is." in page.text and "receipt.pdf" in page.text and "Being handled" in page.text
    download = client.get(re.search(r'href="([^"]+/files/\d+)"', page.text).group(1))
    assert download.status_code == 200
    assert download.headers["Content-Type"] == "application/pdf"
    assert download.headers["Content-Disposition"].startswith("attachment")
    assert download.data.startswith(b"%PDF")
    download.close()


def test_customer_withdraws_and_then_cannot_reply(app, client, make_tenant):
    tenant = make_tenant()
    submission = submitted(app, tenant)
    url = f"/t/{tenant.slug}/track/{submission.tracking_token}"
    csrf = CSRF_RE.search(client.get(url).text).group(1)
    assert client.post(f"{url}/withdraw", data={"csrf_token": csrf}).status_code == 302
    assert "You withdrew this request." in client.get(url).text
    late = client.post(f"{url}/reply", data={"csrf_token": csrf, "body": "wait"})
    assert late.status_code == 409 and "closed" in late.text


def test_not_satisfied_reopens_a_resolved_ticket_for_a_manager(app, client, make_tenant, make_user):
    from crm.auth.models import User

    tenant = make_tenant()
    agent = make_user(tenant, "agent")
    submission = submitted(app, tenant)
    with acting_for(app, tenant) as session:
        ticket = tickets.ticket_by_number(submission.number)
        tickets.resolve(
            ticket,
            "Refunded 50 yuan.",
            user=session.get(User, agent.id),
            ip=None,
            no_refund_reason="no_refund_requested",
        )
        tickets.add_note(ticket, "SECRET internal remark", user=session.get(User, agent.id), ip=None)
        session.commit()
    url = f"/t/{tenant.slug}/track/{submission.tracking_token}"
    page = client.get(url)
    assert "Refunded 50 yuan." in page.text and "SECRET internal remark" not in page.text
    assert "12315" in page.text
    csrf = CSRF_RE.search(page.text).group(1)
    assert (
        client.post(f"{url}/not-satisfied", data={"csrf_token": csrf, "body": "It was 100."}).status_code
        == 302
    )
    with acting_for(app, tenant):
        ticket = tickets.ticket_by_number(submission.number)
        assert ticket.status == Status.OPEN and ticket.needs_manager


def test_agent_first_name_or_team_name_only(app, client, make_tenant, make_user):
    from crm.auth import service as auth
    from crm.auth.models import User

    tenant = make_tenant()
    with acting_for(app, tenant) as session:
        from crm.audit.service import Actor

        agent = auth.create_user(
            email="zhang@example.test",
            role="agent",
            password="long enough pw",
            display_name="Wei Zhang",
            actor=Actor.system(),
        )
        session.commit()
        agent_id = agent.id
    submission = submitted(app, tenant)
    with acting_for(app, tenant) as session:
        ticket = tickets.ticket_by_number(submission.number)
        tickets.reply(ticket, "We are checking.", user=session.get(User, agent_id), ip=None)
        session.commit()
    url = f"/t/{tenant.slug}/track/{submission.tracking_token}"
    page = client.get(url).text
    assert "Wei ·" in page and "Zhang" not in page and "zhang@example.test" not in page
    with acting_for(app, tenant) as session:
        session.execute(update(TenantSettings).values(agent_display="team", team_name="Refund Team"))
        session.commit()
    page = client.get(url).text
    assert "Refund Team ·" in page and "Wei" not in page


def test_staff_of_another_tenant_cannot_reach_the_receipt(app, client, make_tenant, make_user):
    tenant, other = make_tenant(), make_tenant()
    send_form(client, tenant.slug, good_fields())
    stranger = app.test_client()
    login(stranger, other, make_user(other, "admin"))
    assert stranger.get(f"/t/{tenant.slug}/refund/receipt/1001").status_code == 404
    assert stranger.get(f"/t/{other.slug}/refund/receipt/1001").status_code == 404


def test_an_expired_tracking_link_is_a_404(app, client, make_tenant):
    from datetime import timedelta

    from crm.columns import utcnow
    from crm.tickets.models import TrackingLink

    tenant = make_tenant()
    mine = submitted(app, tenant)
    url = f"/t/{tenant.slug}/track/{mine.tracking_token}"
    assert client.get(url).status_code == 200
    with acting_for(app, tenant) as session:
        session.execute(update(TrackingLink).values(expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()
    response = client.get(url)
    assert response.status_code == 404 and mine.reference not in response.text


def test_a_merged_duplicate_tells_the_customer_where_the_request_continues(
    app, client, make_tenant, make_user
):
    from crm.auth.models import User

    tenant = make_tenant()
    agent = make_user(tenant, "agent")
    first = submitted(app, tenant)
    with acting_for(app, tenant) as session:
        duplicate = tickets.submit_refund_request(refund_request(), nonce="again", ip=None)
        token = duplicate.tracking_token
        target = tickets.ticket_by_number(first.number)
        tickets.merge(duplicate.ticket, target, user=session.get(User, agent.id), ip=None)
        session.commit()
    page = client.get(f"/t/{tenant.slug}/track/{token}")
    assert f"This request was the same as your request {first.reference}" in page.text
