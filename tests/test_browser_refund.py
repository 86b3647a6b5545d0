"""Issue 3's whole path in a real browser, as people live it: a customer on a phone asks
for a refund with two evidence files; an agent on a laptop finds it, asks for more;
the customer answers; the agent resolves; the customer sees the result; and the audit
chain holds every step. In English and in Chinese. Screenshots go to SCREENSHOTS_DIR."""

import pytest
from sqlalchemy import select

from crm.audit.models import AuditEvent
from crm.audit.service import verify_chain
from crm.notify.models import OutboxMessage
from tests.browser import (
    DESK,
    PHONE,
    assert_fits_the_screen,
    assert_inputs_are_labelled,
    needs_browser,
    shoot,
)
from tests.conftest import PASSWORD, acting_for

pytestmark = needs_browser

WORDS = {
    "en": {
        "send": "Send my request",
        "request_info": "Request information",
        "resolve": "Resolve",
        "waiting": "Waiting for your answer",
        "resolved": "Resolved",
        "email": "Email",
        "password": "Password",
        "sign_in": "Sign in",
    },
    "zh-CN": {
        "send": "提交申请",
        "request_info": "请求补充信息",
        "resolve": "解决",
        "waiting": "待您补充",
        "resolved": "已解决",
        "email": "邮箱",
        "password": "密码",
        "sign_in": "登录",
    },
}


@pytest.mark.parametrize("locale", ["en", "zh-CN"])
def test_refund_request_from_submission_to_resolution(
    app, browser, live_server, make_tenant, make_user, locale
):
    words = WORDS[locale]
    tenant = make_tenant(name="Huabei Telecom 华北通信")
    agent = make_user(tenant, "agent")
    customer = browser.new_context(locale=locale, viewport=PHONE).new_page()
    staff = browser.new_context(locale=locale, viewport=DESK).new_page()
    tag = locale

    # 1. The customer fills in the hosted form on a phone, with two evidence files.
    customer.goto(f"{live_server}/t/{tenant.slug}/refund")
    assert_fits_the_screen(customer)
    assert_inputs_are_labelled(customer)
    customer.fill("#name", "王小明")
    customer.fill("#phone", "138 0013 8000")
    customer.fill("#email", "xiaoming@example.test")
    customer.fill("#amount", "199.00")
    customer.select_option("#reason", "unused_balance")
    customer.fill("#description", "号码已停用，请退还剩余余额 199 元。<script>alert(1)</script>")
    customer.set_input_files(
        "#attachments",
        [
            {"name": "账单.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.4\n%%EOF\n"},
            {"name": "record.txt", "mimeType": "text/plain", "buffer": "充值记录 200 元".encode()},
        ],
    )
    customer.check("#consent")
    shoot(customer, f"refund-1-form-{tag}")
    with customer.expect_navigation():
        customer.get_by_role("button", name=words["send"]).click()

    # 2. The receipt: reference, deadline, private link; and the receipt email.
    assert "RF-1001" in customer.text_content("main")
    assert_fits_the_screen(customer)
    shoot(customer, f"refund-2-receipt-{tag}")
    tracking_url = (
        customer.locator("#tracking-link").get_attribute("href").replace("http://localhost", live_server)
    )
    with acting_for(app, tenant) as session:
        receipt = session.scalars(select(OutboxMessage)).one()
        assert receipt.to_address == "xiaoming@example.test" and "RF-1001" in receipt.subject

    # 3. The agent signs in on a laptop, finds the ticket and asks for more.
    staff.goto(f"{live_server}/t/{tenant.slug}/login")
    staff.get_by_label(words["email"]).fill(agent.email)
    staff.get_by_label(words["password"]).fill(PASSWORD)
    with staff.expect_navigation():
        staff.get_by_role("button", name=words["sign_in"]).click()
    staff.goto(f"{live_server}/t/{tenant.slug}/tickets?q=13800138000")
    assert "王小明" in staff.text_content("table")
    shoot(staff, f"refund-3-queue-{tag}")
    with staff.expect_navigation():
        staff.get_by_role("link", name="RF-1001").click()
    assert "账单.pdf" in staff.text_content("main") and "<script>" in staff.text_content("main")
    staff.click("#tab-info")
    staff.fill("#info-body", "请提供停机证明的截图。")
    with staff.expect_navigation():
        staff.locator("#pane-info form[method=post] button[type=submit]").click()
    shoot(staff, f"refund-4-ticket-{tag}")

    # 4. The customer sees the question on the tracking page and answers with a file.
    customer.goto(tracking_url)
    assert words["waiting"] in customer.text_content("main")
    assert "请提供停机证明的截图。" in customer.text_content("main")
    customer.fill("#body", "截图已上传。")
    customer.set_input_files(
        "#attachments", [{"name": "停机证明.png", "mimeType": "image/png", "buffer": PNG}]
    )
    with customer.expect_navigation():
        customer.locator("form[action$='/reply'] button[type=submit]").click()
    assert "停机证明.png" in customer.text_content("main")
    assert_fits_the_screen(customer)
    shoot(customer, f"refund-5-tracking-answered-{tag}")

    # 5. The agent resolves; the customer sees the result and their options.
    staff.reload()
    assert "截图已上传。" in staff.text_content("main")
    staff.click("#tab-resolve")
    staff.fill("#resolve-body", "已退还 199 元至原支付账户，预计 3 个工作日到账。")
    # Without a refund decision, a refund request resolves only on a stated ground.
    staff.check("#resolve-no_refund_requested")
    with staff.expect_navigation():
        staff.locator("#pane-resolve form[method=post] button[type=submit]").click()
    assert "已退还 199 元" in staff.text_content("#outgoing-thread")  # the preview, as it will arrive
    with staff.expect_navigation():
        staff.locator("button[name=step][value=send]").click()
    customer.goto(tracking_url)
    main = customer.text_content("main")
    assert words["resolved"] in main and "已退还 199 元" in main and "12315" in main
    shoot(customer, f"refund-6-tracking-resolved-{tag}")

    # 6. Every step is in the audit trail, and the chain verifies.
    with acting_for(app, tenant) as session:
        actions = session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)).all()
        report = verify_chain()
    assert report.ok
    for action in (
        "customer.created",
        "ticket.created",
        "ticket.message_received",
        "attachment.added",
        "email.queued",
        "auth.login",
        "ticket.replied",
        "ticket.status_changed",
    ):
        assert action in actions, action
    assert actions.count("attachment.added") == 3


PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6300010000000500010d0a2db40000000049454e44ae426082"
)
