"""Email to customers, delivered to a real SMTP server (aiosmtpd on loopback): sent after
the commit and never after a rollback, in the customer's language, retried when the
server is down, and held on the admin's outbox page when no server is configured."""

import re
import uuid
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from rq import SimpleWorker
from sqlalchemy import select

from crm import jobs
from crm.audit.models import AuditEvent
from crm.audit.service import Actor
from crm.notify import service as notify
from crm.notify.models import OutboxMessage
from crm.tickets import emails
from crm.tickets import service as tickets
from tenants import CurrentTenant
from tests.conftest import CSRF_RE, REDIS_URL, acting_for, login, requires_redis
from tests.mail import Mailbox
from tests.test_requester_details import staff_reply, submit_request

SUBMISSION_TOKEN_RE = re.compile(r'name="submission_token" type="hidden" value="([^"]+)"')
TRACKING_LINK_RE = re.compile(r"https?://\S+/track/[A-Za-z0-9_-]+")
CJK_RE = re.compile(r"[\u4e00-\u9fff]")


# --- the customer's side -------------------------------------------------------------------

LANGUAGE_HEADERS = {"en": "en", "zh_CN": "zh-CN,zh;q=0.9"}
CUSTOMER_NAMES = {"en": "Lei Li", "zh_CN": "李雷"}


def submit_refund_form(client: FlaskClient, tenant: CurrentTenant, *, email: str, locale: str = "en"):
    """Fill in and send the hosted refund form as a customer's browser in ``locale``."""
    headers = {"Accept-Language": LANGUAGE_HEADERS[locale]}
    page = client.get(f"/t/{tenant.slug}/refund", headers=headers)
    assert page.status_code == 200
    response = client.post(
        f"/t/{tenant.slug}/refund",
        headers=headers,
        data={
            "csrf_token": CSRF_RE.search(page.text).group(1),
            "submission_token": SUBMISSION_TOKEN_RE.search(page.text).group(1),
            "name": CUSTOMER_NAMES[locale],
            "phone": "13800138000",
            "email": email,
            "reason": "unused_balance",
            "description": "Number cancelled; please refund the remaining 199 yuan. 号码已注销。",
            "consent": "y",
        },
    )
    assert response.status_code == 302, response.text  # on to the receipt
    return response


def outbox_rows(app: Flask, tenant: CurrentTenant) -> list[OutboxMessage]:
    with acting_for(app, tenant) as session:
        rows = list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
        session.expunge_all()
        return rows


def audit_actions(app: Flask, tenant: CurrentTenant) -> list[str]:
    with acting_for(app, tenant) as session:
        return list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)))


def staff_client(app: Flask, tenant: CurrentTenant, make_user, role: str) -> FlaskClient:
    client = app.test_client()
    assert login(client, tenant, make_user(tenant, role)).status_code == 302
    return client


def assert_receipt_delivered(
    app: Flask, tenant: CurrentTenant, mailbox: Mailbox, *, to: str, locale: str
) -> str:
    """The customer got exactly one receipt, and its link opens their request; returns
    the message's text."""
    assert len(mailbox.messages) == 1
    message = mailbox.messages[0]
    assert mailbox.recipients == [[to]]
    assert message["To"] == to
    assert tenant.name in str(message["From"])
    assert message["Date"] is not None
    assert message["Content-Transfer-Encoding"] != "8bit"  # we do not negotiate 8BITMIME
    assert "RF-1001" in message["Subject"]
    body = message.get_content()
    assert CUSTOMER_NAMES[locale] in body
    links = TRACKING_LINK_RE.findall(body)
    assert len(links) == 1
    tracking = app.test_client().get(urlsplit(links[0]).path)
    assert tracking.status_code == 200
    assert "RF-1001" in tracking.text and "号码已注销" in tracking.text

    [row] = outbox_rows(app, tenant)
    assert row.status == "sent" and row.sent_at is not None and row.attempts == 1
    token = links[0].rsplit("/", 1)[1]
    assert token not in row.body and "[tracking-link]" in row.body  # the link exists only in the mail
    assert "email.sent" in audit_actions(app, tenant)
    return body


def assert_written_in(body: str, subject: str, locale: str) -> None:
    english = (
        "Hello ",
        "We have received your refund request",
        "First answer by",
        "Decision on your request by",
    )
    if locale == "en":
        assert all(phrase in body for phrase in english)
        assert "We received your request RF-1001" in subject
        return
    assert re.search(r"\d{4}年\d{1,2}月\d{1,2}日", body)  # the deadline, in Chinese
    assert not any(phrase in body for phrase in english)
    assert CJK_RE.search(subject)


def test_a_receipt_composed_while_another_language_is_active_is_all_in_the_customers(app, make_tenant):
    tenant = make_tenant()
    with acting_for(app, tenant) as session:  # no request: English is the active language
        ticket = tickets.submit_refund_request(
            tickets.RefundRequest(
                customer=tickets.CustomerDetails(
                    name="李雷", phone="13800138000", email="lilei@example.test", locale="zh_CN"
                ),
                reason="unused_balance",
                description="号码已注销，请退还余额。",
            ),
            nonce=uuid.uuid4().hex,
            ip=None,
        ).ticket
        subject, body = emails.compose(
            "receipt", ticket=ticket, message="", link="https://example.test/track/x"
        )
        session.rollback()
    assert_written_in(body, subject, "zh_CN")


# --- (a) in-process, (b) through rq -------------------------------------------------------


@pytest.mark.parametrize("locale", ["en", "zh_CN"])
def test_the_receipt_reaches_the_customer_after_commit_in_their_language(
    make_app, smtp_url, smtp_server, make_tenant, make_user, locale
):
    mail_app = make_app(smtp_url=smtp_url)
    tenant = make_tenant()
    submit_refund_form(mail_app.test_client(), tenant, email="lilei@example.test", locale=locale)

    body = assert_receipt_delivered(mail_app, tenant, smtp_server, to="lilei@example.test", locale=locale)
    assert_written_in(body, smtp_server.messages[0]["Subject"], locale)


def test_what_the_desk_sends_by_itself_says_so_and_a_staff_reply_does_not(
    make_app, smtp_url, smtp_server, make_tenant, make_user
):
    """RFC 3834: a customer's out-of-office must not answer a receipt; it may answer a
    person."""
    mail_app = make_app(smtp_url=smtp_url)
    tenant = make_tenant()
    number = submit_request(mail_app.test_client(), tenant.slug, name="陈静", email="chen@example.test")
    staff_reply(mail_app, tenant, make_user, number, "请补充您的付款截图。")
    receipt, reply = smtp_server.messages
    assert "RF-" in str(receipt["Subject"]) and receipt["Auto-Submitted"] == "auto-generated"
    assert "请补充您的付款截图" in reply.get_content() and reply["Auto-Submitted"] is None


def test_the_outbox_shows_a_sent_receipt_without_its_secret_link(
    make_app, smtp_url, smtp_server, make_tenant, make_user
):
    mail_app = make_app(smtp_url=smtp_url)
    tenant = make_tenant()
    submit_refund_form(mail_app.test_client(), tenant, email="lilei@example.test")
    token = TRACKING_LINK_RE.search(smtp_server.messages[0].get_content()).group(0).rsplit("/", 1)[1]

    page = staff_client(mail_app, tenant, make_user, "admin").get(f"/t/{tenant.slug}/admin/outbox")
    assert page.status_code == 200
    assert "Sent" in page.text and "Handed to the mail server" in page.text
    assert "lilei@example.test" in page.text and "RF-1001" in page.text
    assert "messages are kept here, not sent" not in page.text
    assert token not in page.text


@requires_redis
def test_the_receipt_goes_out_through_a_real_rq_worker(make_app, smtp_url, smtp_server, make_tenant):
    rq_app = make_app(smtp_url=smtp_url, redis_url=REDIS_URL)
    tenant = make_tenant()
    submit_refund_form(rq_app.test_client(), tenant, email="lilei@example.test", locale="zh_CN")
    assert smtp_server.messages == []  # waiting for a worker
    assert [row.status for row in outbox_rows(rq_app, tenant)] == ["queued"]

    with rq_app.app_context():
        SimpleWorker([jobs.queue()], connection=jobs.redis_connection()).work(burst=True)

    body = assert_receipt_delivered(rq_app, tenant, smtp_server, to="lilei@example.test", locale="zh_CN")
    assert_written_in(body, smtp_server.messages[0]["Subject"], "zh_CN")


# --- (c) the SMTP server is down -------------------------------------------------------------


def retry_until_given_up(app: Flask, tenant: CurrentTenant, message_id: int) -> None:
    """What rq's retries do: call the job again until it stops raising."""
    for attempt in range(2, notify.MAX_ATTEMPTS + 1):
        with acting_for(app, tenant) as session:
            if attempt < notify.MAX_ATTEMPTS:
                with pytest.raises(OSError):
                    notify.send_outbox_message(message_id)
                session.rollback()
            else:
                notify.send_outbox_message(message_id)
                session.commit()


def test_when_smtp_is_down_the_message_waits_then_fails_after_the_last_attempt(
    make_app, smtp_down_url, make_tenant, make_user
):
    down_app = make_app(smtp_url=smtp_down_url)
    tenant = make_tenant()
    client = down_app.test_client()
    receipt = client.get(submit_refund_form(client, tenant, email="lilei@example.test").location)
    assert receipt.status_code == 200 and "RF-1001" in receipt.text  # the customer is not let down

    [row] = outbox_rows(down_app, tenant)
    assert (row.status, row.attempts, row.sent_at) == ("queued", 1, None)
    assert "ConnectionRefusedError" in row.last_error
    admin = staff_client(down_app, tenant, make_user, "admin")
    page = admin.get(f"/t/{tenant.slug}/admin/outbox")
    assert "Queued" in page.text and "ConnectionRefusedError" in page.text
    assert "it is not tried again" in page.text  # no Redis here: nothing will retry it

    retry_until_given_up(down_app, tenant, row.id)

    [row] = outbox_rows(down_app, tenant)
    assert (row.status, row.attempts, row.sent_at) == ("failed", notify.MAX_ATTEMPTS, None)
    assert "/track/" not in row.body  # the outbox never held a working secret link
    actions = audit_actions(down_app, tenant)
    assert "email.failed" in actions and "email.sent" not in actions
    assert actions.count("email.attempt_failed") == notify.MAX_ATTEMPTS - 1  # every attempt is on the record
    page = admin.get(f"/t/{tenant.slug}/admin/outbox?status=failed")
    assert "Failed" in page.text and f"gave up after {notify.MAX_ATTEMPTS} attempts" in page.text


@requires_redis
def test_when_smtp_is_down_rq_schedules_a_retry(make_app, smtp_down_url, make_tenant):
    rq_app = make_app(smtp_url=smtp_down_url, redis_url=REDIS_URL)
    tenant = make_tenant()
    submit_refund_form(rq_app.test_client(), tenant, email="lilei@example.test")

    with rq_app.app_context():
        SimpleWorker([jobs.queue()], connection=jobs.redis_connection()).work(burst=True)
        scheduled = jobs.queue().scheduled_job_registry.get_job_ids()

    assert len(scheduled) == 1  # rq's Retry put it back for later
    [row] = outbox_rows(rq_app, tenant)
    assert (row.status, row.attempts) == ("queued", 1) and row.last_error


# --- (d) no SMTP_URL: held on the outbox page ------------------------------------------------


def test_without_smtp_the_message_is_held_and_shown_to_admins_and_managers(make_app, make_tenant, make_user):
    held_app = make_app()
    tenant = make_tenant()
    submit_refund_form(held_app.test_client(), tenant, email="lilei@example.test")
    assert [row.status for row in outbox_rows(held_app, tenant)] == ["held"]

    for role in ("admin", "manager"):
        page = staff_client(held_app, tenant, make_user, role).get(f"/t/{tenant.slug}/admin/outbox")
        assert page.status_code == 200
        assert "messages are kept here, not sent" in page.text
        assert "Held" in page.text and "lilei@example.test" in page.text
        assert "We received your request RF-1001" in page.text  # the subject
        assert "We have received your refund request RF-1001." in page.text  # the body
        assert "English" in page.text
        if "tickets.show" in held_app.view_functions:  # else the reference is shown as text
            assert f'href="/t/{tenant.slug}/tickets/1001"' in page.text


def test_a_worker_without_smtp_url_holds_the_message_instead_of_guessing_a_server(make_app, make_tenant):
    held_app = make_app()
    tenant = make_tenant()
    with acting_for(held_app, tenant) as session:
        # Queued by a web process that has SMTP_URL; the worker running the job has none.
        message = OutboxMessage(to_address="lilei@example.test", subject="s", body="b", locale="en")
        session.add(message)
        session.commit()
        message_id = message.id
    with acting_for(held_app, tenant) as session:
        notify.send_outbox_message(message_id)
        session.commit()
    [row] = outbox_rows(held_app, tenant)
    assert (row.status, row.attempts, row.last_error) == ("held", 0, None)


@pytest.mark.parametrize("role", ["agent", "auditor"])
def test_other_staff_roles_get_403_on_the_outbox(make_app, make_tenant, make_user, role):
    held_app = make_app()
    tenant = make_tenant()
    page = staff_client(held_app, tenant, make_user, role).get(f"/t/{tenant.slug}/admin/outbox")
    assert page.status_code == 403


def test_another_tenants_admin_never_sees_this_outbox(make_app, make_tenant, make_user):
    held_app = make_app()
    tenant, other = make_tenant(), make_tenant()
    submit_refund_form(held_app.test_client(), tenant, email="lilei@example.test")
    stranger = staff_client(held_app, other, make_user, "admin")

    theirs = stranger.get(f"/t/{tenant.slug}/admin/outbox")
    assert theirs.status_code in (302, 404)
    assert "lilei@example.test" not in theirs.text
    own = stranger.get(f"/t/{other.slug}/admin/outbox")
    assert own.status_code == 200
    assert "No messages yet." in own.text and "lilei@example.test" not in own.text


def test_the_outbox_pages_newest_first_and_filters_by_status(make_app, make_tenant, make_user):
    held_app = make_app()
    tenant = make_tenant()
    with acting_for(held_app, tenant) as session:
        for n in range(1, 31):
            notify.queue_email(
                to=f"c{n}@example.test",
                subject=f"Message {n:02d}",
                body="…",
                locale="en",
                ticket_id=None,
                actor=Actor.system(),
                automatic=None,
            )
        session.commit()
    admin = staff_client(held_app, tenant, make_user, "admin")

    first = admin.get(f"/t/{tenant.slug}/admin/outbox")
    shown = re.findall(r"Message \d\d", first.text)
    assert shown == [f"Message {n:02d}" for n in range(30, 5, -1)]
    older = re.search(r'href="([^"]+)">Older messages', first.text).group(1)
    second = admin.get(older.replace("&amp;", "&"))
    assert re.findall(r"Message \d\d", second.text) == [f"Message {n:02d}" for n in range(5, 0, -1)]
    assert "Older messages" not in second.text

    assert "No messages with this status." in admin.get(f"/t/{tenant.slug}/admin/outbox?status=sent").text
    assert (
        len(re.findall(r"Message \d\d", admin.get(f"/t/{tenant.slug}/admin/outbox?status=held").text)) == 25
    )
    assert admin.get(f"/t/{tenant.slug}/admin/outbox?status=lost").status_code == 400


# --- (e) no address, (f) rolled back ----------------------------------------------------------


def test_no_email_is_written_when_the_customer_gave_no_address(
    make_app, smtp_url, smtp_server, make_tenant, make_user
):
    mail_app = make_app(smtp_url=smtp_url)
    tenant = make_tenant()
    submit_refund_form(mail_app.test_client(), tenant, email="")

    assert smtp_server.messages == []
    assert outbox_rows(mail_app, tenant) == []
    assert "email.queued" not in audit_actions(mail_app, tenant)
    page = staff_client(mail_app, tenant, make_user, "admin").get(f"/t/{tenant.slug}/admin/outbox")
    assert "No messages yet." in page.text


def test_a_rolled_back_request_sends_nothing(make_app, smtp_url, smtp_server, make_tenant):
    mail_app = make_app(smtp_url=smtp_url)
    tenant = make_tenant()
    request = tickets.RefundRequest(
        customer=tickets.CustomerDetails(
            name="Lei Li", phone="13800138000", email="lilei@example.test", locale="en"
        ),
        reason="unused_balance",
        description="Please refund my balance.",
    )
    with acting_for(mail_app, tenant) as session:
        tickets.submit_refund_request(request, nonce="rolled-back", ip=None)
        session.rollback()
    assert smtp_server.messages == []
    assert outbox_rows(mail_app, tenant) == []

    with acting_for(mail_app, tenant) as session:
        tickets.submit_refund_request(request, nonce="committed", ip=None)
        session.commit()
    assert len(smtp_server.messages) == 1  # the same path, committed, does send
    assert [row.status for row in outbox_rows(mail_app, tenant)] == ["sent"]


def test_held_messages_go_out_once_smtp_is_set_and_the_operator_sends_them(
    make_app, smtp_url, smtp_server, make_tenant
):
    tenant = make_tenant()
    submit_refund_form(make_app().test_client(), tenant, email="lilei@example.test")
    assert [row.status for row in outbox_rows(make_app(), tenant)] == ["held"]
    without_smtp = make_app().test_cli_runner().invoke(args=["outbox", "send", "--tenant", tenant.slug])
    assert without_smtp.exit_code == 1 and "SMTP_URL is not set" in without_smtp.output
    result = (
        make_app(smtp_url=smtp_url).test_cli_runner().invoke(args=["outbox", "send", "--tenant", tenant.slug])
    )
    assert result.exit_code == 0 and "sent 1, not sent 0" in result.output
    assert [message["To"] for message in smtp_server.messages] == ["lilei@example.test"]
    assert [row.status for row in outbox_rows(make_app(), tenant)] == ["sent"]
    assert {"email.released", "email.sent"} <= set(audit_actions(make_app(), tenant))
