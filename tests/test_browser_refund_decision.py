"""Issue 5's "done means" in a real browser, in English and in Chinese: a manager
publishes policy v1; a customer on a phone asks for a refund under it; the manager
publishes v2; an agent decides the first request under v1 with the calculator's
arithmetic on the page, above the approval threshold; a second manager approves; the
customer reads the final response with the version and where else to turn; the agent
records the payout before its deadline and the payout clock shows met; the audit chain
verifies. Every page must fit a phone and label its inputs. Screenshots go to
SCREENSHOTS_DIR."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from babel.dates import format_date

from crm.provisioning.service import tenant_settings
from tests.browser import DESK, PHONE, needs_browser
from tests.conftest import PASSWORD, acting_for
from tests.test_browser_refund import PNG
from tests.test_browser_sla import check_and_shoot
from tests.test_policies import published
from tests.test_refunds import received
from tests.test_sla import assert_audit_chain_verifies

pytestmark = needs_browser

SHANGHAI = ZoneInfo("Asia/Shanghai")
WORDS = {
    "en": {
        "babel": "en",
        "email": "Email",
        "password": "Password",
        "sign_in": "Sign in",
        "new_draft": "New draft from the latest version",
        "text_en": "Policy text, English (Markdown)",
        "text_zh": "Policy text, Simplified Chinese (Markdown)",
        "items": "Non-refundable items",
        "fee": "Handling fee (percent)",
        "cap": "Handling fee cap",
        "payout_days": "Payout within (days)",
        "save": "Save draft",
        "saved": "Draft saved; the preview below shows it.",
        "confirm": "I understand that a published version can never be changed.",
        "publish": "Publish version {n}",
        "published": "Version {n} is published.",
        "item": "Number activation fee",
        "send": "Send my request",
        "refund_link": "Refund decision, payouts and escalations",
        "applicable": "Applicable: version 1",
        "calculate": "Calculate the suggested refund",
        "suggested": "Suggested refund: CN¥75.50",
        "lines": [
            "Amount paid: CN¥199.00",
            "Cancelled 14 days after purchase, after the 7-day cooling-off period",
            "Non-refundable: Number activation fee, CN¥50.00",
            "Service used 14 of 30 days: 16/30 of CN¥149.00 refunded",
            "Handling fee of 5% on CN¥79.47",
        ],
        "preview": "Preview the decision",
        "preview_heading": "Check the decision before it is recorded",
        "waits_preview": "This decision waits for a manager's approval: nothing is sent to the customer yet.",
        "submit": "Submit for a manager's approval",
        "waits": "The decision waits for a manager's approval.",
        "approve": "Approve: preview the final response",
        "approve_heading": "Check the final response before you approve",
        "approve_send": "Approve and send the final response to the customer",
        "approved": "Approved; the final response has been sent to the customer.",
        "send_final": "Send final response to the customer",
        "back": "Back to edit",
        "recorded": "Decision recorded; the final response has been sent to the customer.",
        "final": [
            "Outcome: Approved in part",
            "Amount refunded: CN¥75.50",
            "Reason: Unused balance or service time, pro rata",
            "refund policy version 1, clause 2",
            "We will pay the refund by {due}",
            "www.12315.cn, or call 12315",
            "call 12300",
        ],
        "pay": "Record the payout",
        "paid": "Payout recorded.",
        "payout_clock": "Payout",
        "met": "Met",
    },
    "zh-CN": {
        "babel": "zh_CN",
        "email": "邮箱",
        "password": "密码",
        "sign_in": "登录",
        "new_draft": "根据最新版本新建草稿",
        "text_en": "政策正文（英文，Markdown）",
        "text_zh": "政策正文（简体中文，Markdown）",
        "items": "不予退还的费用",
        "fee": "手续费（百分比）",
        "cap": "手续费上限",
        "payout_days": "付款期限（天）",
        "save": "保存草稿",
        "saved": "草稿已保存，可在下方预览。",
        "confirm": "我知道版本一经发布就不能再修改。",
        "publish": "发布第 {n} 版",
        "published": "第 {n} 版已发布。",
        "item": "号码开通费",
        "send": "提交申请",
        "refund_link": "退款决定、付款与外部投诉",
        "applicable": "适用版本：第 1 版",
        "calculate": "计算建议退款金额",
        "suggested": "建议退款金额：¥75.50",
        "lines": [
            "已付金额：¥199.00",
            "购买后第 14 天注销，已超过 7 天冷静期",
            "不予退还：号码开通费，¥50.00",
            "服务期 30 天已使用 14 天：退还 ¥149.00 的 16/30",
            "按 ¥79.47 的 5% 收取手续费",
        ],
        "preview": "预览决定",
        "preview_heading": "记录前请核对决定",
        "waits_preview": "该决定需经经理审批：目前不会向客户发送任何内容。",
        "submit": "提交经理审批",
        "waits": "该决定正在等待经理审批。",
        "approve": "批准：预览最终答复",
        "approve_heading": "批准前请核对最终答复",
        "approve_send": "批准并向客户发送最终答复",
        "approved": "已批准，最终答复已发送给客户。",
        "send_final": "向客户发送最终答复",
        "back": "返回修改",
        "recorded": "决定已记录，最终答复已发送给客户。",
        "final": [
            "处理结果：部分批准",
            "退款金额：¥75.50",
            "理由：未使用的余额或服务期，按比例退还",
            "退款政策第 1 版，clause 2",
            "我们将在 {due} 前退款",
            "www.12315.cn，或拨打 12315",
            "拨打 12300",
        ],
        "pay": "记录付款",
        "paid": "付款已记录。",
        "payout_clock": "付款",
        "met": "已达成",
    },
}
POLICY_TEXT = {
    "en": "# Refunds\n\n1. Within 7 days: a full refund.\n2. After that, unused service pro rata.\n",
    "zh_CN": "# 退款规则\n\n1. 7 天内全额退款。\n2. 此后按未使用的服务期比例退款。\n",
}


def sign_in(browser, locale: str, base: str, user) -> object:
    page = browser.new_context(locale=locale, viewport=DESK).new_page()
    words = WORDS[locale]
    page.goto(f"{base}/login")
    page.get_by_label(words["email"]).fill(user.email)
    page.get_by_label(words["password"]).fill(PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name=words["sign_in"]).click()
    return page


def look(page, name: str, viewport: dict = DESK) -> None:
    """Check the page at desk and phone widths, photograph it, and go back to ``viewport``."""
    check_and_shoot(page, name)
    page.set_viewport_size(viewport)


def click_and_wait(page, name: str) -> None:
    with page.expect_navigation():
        page.get_by_role("button", name=name).click()


def flash(page) -> str:
    return page.locator(".alert").first.inner_text()


def publish_draft(page, base: str, locale: str, number: int, **terms: str) -> None:
    """A new draft from the latest version, its terms changed, saved, then published."""
    words = WORDS[locale]
    page.goto(f"{base}/admin/policies")
    click_and_wait(page, words["new_draft"])
    for label, value in terms.items():
        page.get_by_label(words[label]).fill(value)
    click_and_wait(page, words["save"])
    assert words["saved"] in flash(page)
    page.get_by_label(words["confirm"]).check()
    click_and_wait(page, words["publish"].format(n=number))
    assert words["published"].format(n=number) in flash(page)


@pytest.mark.parametrize("locale", ["en", "zh-CN"])
def test_a_refund_is_decided_under_its_policy_version_approved_told_and_paid(
    app, runner, browser, live_server, make_tenant, make_user, locale
):
    words = WORDS[locale]
    tag = f"decision-{locale}"
    tenant = make_tenant(name="Huabei Telecom 华北通信")
    manager, approver, agent = (make_user(tenant, role) for role in ("manager", "manager", "agent"))
    with acting_for(app, tenant) as session:
        tenant_settings().approval_threshold_minor = 5000  # above 50.00 needs a second person
        session.commit()
    base = f"{live_server}/t/{tenant.slug}"
    today = datetime.now(SHANGHAI).date()

    # 1. A manager writes and publishes v1 through the admin pages.
    staff = sign_in(browser, locale, base, manager)
    staff.goto(f"{base}/admin/policies")
    click_and_wait(staff, words["new_draft"])
    staff.get_by_label(words["text_en"]).fill(POLICY_TEXT["en"])
    staff.get_by_label(words["text_zh"]).fill(POLICY_TEXT["zh_CN"])
    staff.get_by_label(words["items"]).fill(f"{words['item']} | 50.00")
    staff.get_by_label(words["fee"]).fill("5")
    staff.get_by_label(words["cap"]).fill("30.00")
    click_and_wait(staff, words["save"])
    assert words["saved"] in flash(staff)
    staff.get_by_label(words["confirm"]).check()
    look(staff, f"{tag}-1-policy-draft")
    click_and_wait(staff, words["publish"].format(n=1))
    assert words["published"].format(n=1) in flash(staff)
    look(staff, f"{tag}-1-policy-published")

    # 2. A customer on a phone asks for a refund under v1, with a purchase date and amount.
    customer = browser.new_context(locale=locale, viewport=PHONE).new_page()
    customer.goto(f"{base}/refund")
    customer.fill("#name", "王小明")
    customer.fill("#phone", "138 0013 8000")
    customer.fill("#email", "xiaoming@example.test")
    customer.select_option("#reason", "unused_balance")
    customer.fill("#purchase_date", (today - timedelta(days=20)).isoformat())
    customer.fill("#amount", "199.00")
    customer.fill("#description", "套餐已停用，请按未使用的天数退款。")
    customer.check("#consent")
    look(customer, f"{tag}-2-customer-form", PHONE)
    click_and_wait(customer, words["send"])
    assert "RF-1001" in customer.text_content("main")
    assert customer.locator(f"main a[href='/t/{tenant.slug}/policy/1']").count() == 1
    look(customer, f"{tag}-2-customer-receipt", PHONE)
    tracking_url = (
        customer.locator("#tracking-link").get_attribute("href").replace("http://localhost", live_server)
    )

    # 3. The manager publishes v2: a new draft from the latest, one term changed.
    publish_draft(staff, base, locale, 2, payout_days="10")
    look(staff, f"{tag}-3-policy-v2-published")

    # 4. The agent decides the first request under v1, with the calculator's arithmetic.
    desk = sign_in(browser, locale, base, agent)
    desk.goto(f"{base}/tickets/1001")
    with desk.expect_navigation():
        desk.get_by_role("link", name=words["refund_link"]).click()
    assert words["applicable"] in desk.text_content("main")
    assert desk.locator("#decision-version_number").input_value() == "1"
    desk.fill("#decision-cancellation_date", (today - timedelta(days=6)).isoformat())
    desk.fill("#decision-service_days_total", "30")
    desk.fill("#decision-service_days_used", "14")
    click_and_wait(desk, words["calculate"])
    calculation = desk.locator("#calc-heading").locator("xpath=..")
    assert calculation.get_by_role("heading", name=words["suggested"]).is_visible()
    steps = calculation.locator("tbody tr td:first-child").all_inner_texts()
    assert steps == words["lines"]
    look(desk, f"{tag}-4-calculator")
    desk.select_option("#decision-outcome", "approved_partial")
    desk.fill("#decision-amount", "75.50")
    desk.select_option("#decision-reason_code", "unused_service")
    desk.fill("#decision-clause", "clause 2")
    click_and_wait(desk, words["preview"])
    # Above the threshold: the preview says it waits, and that nothing is sent yet.
    assert desk.get_by_role("heading", name=words["preview_heading"]).is_visible()
    assert words["waits_preview"] in desk.text_content("#preview-waits")
    look(desk, f"{tag}-4-preview-waits")
    click_and_wait(desk, words["submit"])
    assert words["waits"] in flash(desk)
    look(desk, f"{tag}-4-awaiting-approval")

    # 5. A second manager finds it in the approval queue and approves it.
    second = sign_in(browser, locale, base, approver)
    second.goto(f"{base}/tickets?view=pending_approval")
    with second.expect_navigation():
        second.get_by_role("link", name="RF-1001").click()
    look(second, f"{tag}-5-ticket-pending")
    with second.expect_navigation():
        second.get_by_role("link", name=words["refund_link"]).click()
    look(second, f"{tag}-5-approval")
    click_and_wait(second, words["approve"])
    # The final response exactly as the customer will read it, before anything is sent.
    assert second.get_by_role("heading", name=words["approve_heading"]).is_visible()
    due = format_date(today + timedelta(days=15), "long", locale=words["babel"])
    shown = second.text_content("#outgoing-thread")
    for line in words["final"]:
        assert line.format(due=due) in shown, line
    assert "xiaoming@example.test" in second.text_content("#outgoing-email-to")
    look(second, f"{tag}-5-approval-preview")
    click_and_wait(second, words["approve_send"])
    assert words["approved"] in flash(second)
    look(second, f"{tag}-5-approved")

    # 6. The customer reads the final response: version 1 and where else to turn.
    due = format_date(today + timedelta(days=15), "long", locale=words["babel"])
    customer.goto(tracking_url)
    main = customer.text_content("main")
    for line in words["final"]:
        assert line.format(due=due) in main, line
    look(customer, f"{tag}-6-tracking-final-response", PHONE)

    # 7. The agent records the payout, with its receipt, before the deadline: met.
    desk.reload()
    desk.fill("#payout-amount", "75.50")
    desk.select_option("#payout-method", "alipay")
    desk.fill("#payout-reference", "ALI-2026-0001")
    desk.fill("#payout-paid_at", datetime.now(SHANGHAI).strftime("%Y-%m-%dT%H:%M"))
    desk.set_input_files("#payout-receipt", [{"name": "回单.png", "mimeType": "image/png", "buffer": PNG}])
    look(desk, f"{tag}-7-payout-form")
    click_and_wait(desk, words["pay"])
    assert words["paid"] in flash(desk)
    look(desk, f"{tag}-7-paid")
    desk.goto(f"{base}/tickets/1001")
    deadlines = desk.locator("#deadlines-heading").locator("xpath=..")
    payout = deadlines.locator("li", has_text=words["payout_clock"])
    assert payout.locator(".badge").first.inner_text().strip().endswith(words["met"])
    look(desk, f"{tag}-7-deadlines")

    assert_audit_chain_verifies(runner, tenant)


@pytest.mark.parametrize("locale", ["en", "zh-CN"])
def test_a_decision_is_previewed_edited_and_sent_as_shown(
    app, browser, live_server, make_tenant, make_user, locale
):
    """Below the threshold a decision is final at once: the agent sees the customer's final
    response before it goes, goes back to change it without retyping, and sends it."""
    words = WORDS[locale]
    tenant = make_tenant(name="Huabei Telecom 华北通信")
    agent = make_user(tenant, "agent")
    published(app, tenant)
    # 199.00, bought Sep 1, asked today (after the cooling-off); the customer reads our language.
    ticket = received(app, tenant, locale=words["babel"])
    base = f"{live_server}/t/{tenant.slug}"
    desk = sign_in(browser, locale, base, agent)
    desk.goto(f"{base}/tickets/{ticket.number}/refund")
    desk.select_option("#decision-outcome", "approved_partial")
    desk.fill("#decision-amount", "140.00")
    desk.select_option("#decision-reason_code", "unused_service")
    desk.fill("#decision-clause", "clause 2")
    desk.fill("#decision-differs_reason", "Goodwill: rounded down.")
    click_and_wait(desk, words["preview"])
    shown = desk.text_content("#outgoing-thread")
    assert words["final"][0] in shown and "140.00" in shown
    look(desk, f"preview-{locale}-1-final-response")

    # Back to edit: everything typed is still there; the amount changes.
    click_and_wait(desk, words["back"])
    assert desk.locator("#decision-clause").input_value() == "clause 2"
    assert desk.locator("#decision-differs_reason").input_value() == "Goodwill: rounded down."
    desk.fill("#decision-amount", "141.55")
    desk.fill("#decision-differs_reason", "")
    click_and_wait(desk, words["preview"])
    assert "141.55" in desk.text_content("#outgoing-thread")
    email = desk.text_content("#outgoing-email-body")
    assert "141.55" in email and "xm@example.test" in desk.text_content("#outgoing-email-to")
    look(desk, f"preview-{locale}-2-final-response-again")

    click_and_wait(desk, words["send_final"])
    assert words["recorded"] in flash(desk)
    customer = browser.new_context(locale=locale, viewport=PHONE).new_page()
    customer.goto(f"{live_server}{ticket.tracking_path}")
    assert "141.55" in customer.text_content("main")
