"""The public pages under attack and under mistakes: tokens bound to their tenant, limits
on the tracking pages, files that are empty or in another encoding, currencies the
tenant does not take, and a form that shows every mistake at once."""

import re
from datetime import date, timedelta
from decimal import Decimal
from io import BytesIO

import pytest
from sqlalchemy import func, select, update

from crm.auth.models import User
from crm.files.models import Attachment
from crm.provisioning.models import TenantSettings
from crm.refunds import service as refunds
from crm.tickets import service as tickets
from crm.tickets.models import ThreadEntry
from tests.conftest import CSRF_RE, acting_for, login, submit, unique
from tests.test_portal import LINK_RE, form_tokens, good_fields, send_form, ticket_count
from tests.test_ticket_service import refund_request

GB18030_TEXT = "退款申请：号码已注销，余额 199 元。".encode("gb18030")


def submitted(client, slug: str, **fields) -> str:
    """Submit a request; the path of its tracking page."""
    response = send_form(client, slug, good_fields(**fields))
    assert response.status_code == 302, response.text
    receipt = client.get(response.headers["Location"])
    return LINK_RE.search(receipt.text).group(1).replace("http://localhost", "")


def reply_on(client, tracking: str, body: str, files=()):
    page = client.get(tracking)
    data = {"csrf_token": CSRF_RE.search(page.text).group(1), "body": body}
    if files:
        data["attachments"] = [(BytesIO(content), name) for name, content in files]
    return client.post(f"{tracking}/reply", data=data)


def test_a_submission_token_from_one_tenants_form_is_refused_by_another(app, client, make_tenant):
    tenant, other = make_tenant(), make_tenant()
    tokens = form_tokens(client, tenant.slug)
    other_csrf = form_tokens(client, other.slug)["csrf_token"]
    response = send_form(client, other.slug, good_fields(), tokens={**tokens, "csrf_token": other_csrf})
    assert response.status_code == 400 and "expired" in response.text
    assert ticket_count(app, other) == 0 and ticket_count(app, tenant) == 0


def test_every_mistake_is_shown_at_once_with_a_summary_and_nothing_is_lost(app, client, make_tenant):
    tenant = make_tenant()
    response = send_form(
        client,
        tenant.slug,
        good_fields(name="", phone="12", email="not-an-email", amount="0", description="我的描述保留"),
    )
    assert response.status_code == 400
    summary = re.search(r'<div id="form-errors".*?</div>', response.text, re.S).group(0)
    assert 'role="alert"' in summary and "autofocus" in summary
    for anchor in ("#name", "#phone", "#email", "#amount"):
        assert f'href="{anchor}"' in summary, anchor
    assert "Please correct 4 things" in summary
    assert "我的描述保留" in response.text  # what they typed stays
    assert ticket_count(app, tenant) == 0


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"amount": "0"}, "Enter the amount you ask back"),
        ({"amount": "0.00"}, "Enter the amount you ask back"),
        ({"purchase_date": "1990-01-01"}, "too old to claim here"),
        ({"purchase_date": (date.today() + timedelta(days=30)).isoformat()}, "cannot be in the future"),
        ({"currency": "KWD"}, "We take refund requests in"),
        ({"currency": "<b>"}, "We take refund requests in"),
        ({"currency": "ABCD"}, "We take refund requests in"),
    ],
)
def test_implausible_claims_and_foreign_currencies_are_refused(app, client, make_tenant, fields, message):
    tenant = make_tenant()
    response = send_form(client, tenant.slug, good_fields(**fields))
    assert response.status_code == 400 and message in response.text
    assert ticket_count(app, tenant) == 0


def test_a_currency_the_admin_allows_is_accepted_and_offered(app, client, make_tenant):
    tenant = make_tenant()
    with acting_for(app, tenant) as session:
        session.execute(update(TenantSettings).values(accepted_currencies="HKD"))
        session.commit()
    page = client.get(f"/t/{tenant.slug}/refund")
    assert '<option value="HKD"' in page.text and '<option value="CNY"' in page.text
    assert send_form(client, tenant.slug, good_fields(currency="HKD")).status_code == 302
    with acting_for(app, tenant):
        assert tickets.ticket_by_number(1001).currency == "HKD"


def test_only_accepted_submissions_count_towards_the_hourly_limit(app, client, make_tenant):
    tenant = make_tenant()
    with acting_for(app, tenant) as session:
        session.execute(update(TenantSettings).values(form_submissions_per_hour=2))
        session.commit()
    for _ in range(5):  # a customer mistyping their phone again and again
        assert send_form(client, tenant.slug, good_fields(phone="123")).status_code == 400
    assert send_form(client, tenant.slug, good_fields()).status_code == 302


def test_an_hourly_limit_equal_to_the_attempts_limit_counts_each_submission_once(app, client, make_tenant):
    tenant = make_tenant()
    with acting_for(app, tenant) as session:  # the same rate as the limit on every post
        session.execute(update(TenantSettings).values(form_submissions_per_hour=60))
        session.commit()
    statuses = [send_form(client, tenant.slug, good_fields(name=f"客户 {n}")).status_code for n in range(31)]
    assert statuses == [302] * 31


def test_a_flood_of_bad_posts_is_stopped_with_the_form_and_a_time_to_come_back(app, client, make_tenant):
    tenant = make_tenant()
    statuses = [send_form(client, tenant.slug, good_fields(phone="1")).status_code for _ in range(61)]
    assert statuses[:60] == [400] * 60 and statuses[60] == 429
    limited = send_form(client, tenant.slug, good_fields(name="韩梅梅"))
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    assert 'value="韩梅梅"' in limited.text and "send it again in" in limited.text


def test_the_tracking_page_limits_reads_per_link(app, client, make_tenant):
    tenant = make_tenant()
    tracking = submitted(client, tenant.slug)
    statuses = [client.get(tracking).status_code for _ in range(60)]
    assert statuses == [200] * 60
    limited = client.get(tracking)
    # Retry-After is the breached limit's own window (a minute), not a default.
    assert limited.status_code == 429 and 0 < int(limited.headers["Retry-After"]) <= 60
    other_tracking = submitted(client, tenant.slug, phone="13900139000")
    assert client.get(other_tracking).status_code == 200  # another link's own budget


def test_replies_are_limited_per_link(app, client, make_tenant):
    tenant = make_tenant()
    tracking = submitted(client, tenant.slug)
    statuses = [reply_on(client, tracking, f"补充说明 {n}").status_code for n in range(20)]
    assert statuses == [302] * 20
    limited = reply_on(client, tracking, "补充说明 20")
    assert limited.status_code == 429 and 60 < int(limited.headers["Retry-After"]) <= 3600  # the hour's
    with acting_for(app, tenant) as session:
        inbound = session.scalar(
            select(func.count()).select_from(ThreadEntry).where(ThreadEntry.kind == "inbound_message")
        )
    assert inbound == 21  # the request itself and 20 replies


def test_a_links_replies_and_its_withdrawal_share_one_budget(app, client, make_tenant):
    tenant = make_tenant()
    tracking = submitted(client, tenant.slug)
    assert [reply_on(client, tracking, f"补充 {n}").status_code for n in range(20)] == [302] * 20
    page = client.get(tracking)
    withdrawn = client.post(f"{tracking}/withdraw", data={"csrf_token": CSRF_RE.search(page.text).group(1)})
    assert withdrawn.status_code == 429 and int(withdrawn.headers["Retry-After"]) > 60
    with acting_for(app, tenant):
        assert tickets.ticket_by_number(1001).status == "new"  # not withdrawn


def test_a_ticket_takes_a_bounded_number_of_customer_files(app, client, make_tenant):
    tenant = make_tenant()
    tracking = submitted(client, tenant.slug)
    for n in range(4):
        files = [(f"note-{n}-{i}.txt", f"evidence {n} {i}".encode()) for i in range(5)]
        assert reply_on(client, tracking, f"证据 {n}", files).status_code == 302
    refused = reply_on(client, tracking, "再来一份", [("one-more.txt", b"one more")])
    assert refused.status_code == 422 and "as many files as it can take" in refused.text
    with acting_for(app, tenant) as session:
        assert session.scalar(select(func.count()).select_from(Attachment)) == 20


def test_an_empty_file_is_refused_and_nothing_is_written(app, client, make_tenant):
    tenant = make_tenant()
    response = send_form(client, tenant.slug, good_fields(), files=[("empty.pdf", b"")])
    assert response.status_code == 422 and "empty.pdf is empty" in response.text
    assert ticket_count(app, tenant) == 0


def test_a_gb18030_text_file_is_served_in_its_own_encoding(app, client, make_tenant):
    tenant = make_tenant()
    response = send_form(client, tenant.slug, good_fields(), files=[("说明.txt", GB18030_TEXT)])
    receipt = client.get(response.headers["Location"])
    tracking = LINK_RE.search(receipt.text).group(1).replace("http://localhost", "")
    page = client.get(tracking)
    href = re.search(r'href="(/t/[^"]+/files/\d+)"', page.text).group(1)
    with client.get(href) as download:
        assert download.headers["Content-Type"] == "text/plain; charset=gb18030"
        assert download.headers["X-Content-Type-Options"] == "nosniff"
        assert download.data.decode("gb18030") == GB18030_TEXT.decode("gb18030")


@pytest.mark.parametrize(
    ("currency", "amount", "needs_manager"),
    [("CNY", "100.00", False), ("CNY", "600.00", True), ("KWD", "49.999", True), ("KWD", "0.100", True)],
)
def test_a_foreign_currency_approval_always_needs_a_manager(
    app, make_tenant, make_user, currency, amount, needs_manager
):
    """The threshold (500 CNY by default) is in the tenant's currency; without a rate, an
    amount in another currency cannot be compared, so a manager approves it."""
    tenant = make_tenant()
    agent = make_user(tenant, "agent")
    with acting_for(app, tenant) as session:
        session.execute(update(TenantSettings).values(accepted_currencies="KWD"))
        request = refund_request(currency=currency, amount=Decimal(amount))
        ticket = tickets.submit_refund_request(request, nonce=unique("n"), ip=None).ticket
        user = session.get(User, agent.id)
        minor = tickets.to_minor_units(amount, currency)
        waits = refunds.approval_needed(ticket, "approved_full", minor, user)
    assert (refunds.THRESHOLD in waits) is needs_manager


def test_links_to_our_own_pages_in_an_answer_are_clickable_others_stay_text(
    app, client, make_tenant, make_user
):
    tenant = make_tenant()
    tracking = submitted(client, tenant.slug)
    own = f"{app.config['PUBLIC_BASE_URL']}/t/{tenant.slug}/policy/1"
    staff = app.test_client()
    assert login(staff, tenant, make_user(tenant, "agent")).status_code == 302
    url = f"/t/{tenant.slug}/tickets/1001"
    body = f"依据：退款政策第 1 版（{own}）。勿点 https://evil.test/login <b>x</b>"
    assert submit(staff, f"{url}/reply", {"reply-body": body}, form_page=url).status_code == 302
    page = client.get(tracking).text
    assert f'<a href="{own}" rel="noopener">{own}</a>）' in page
    assert 'href="https://evil.test' not in page and "&lt;b&gt;x&lt;/b&gt;" in page
