"""Issue 13's path in a real browser: a prospect asks for a free trial on a phone, gets
a reference and a promise; an agent calls (no answer, then answered), qualifies and wins
the lead; the customer later asks for a refund, and the agent sees the sales history on
the ticket. In English and in Chinese. Screenshots go to SCREENSHOTS_DIR."""

import pytest
from sqlalchemy import select

from crm.auth.models import User
from crm.leads.models import Lead
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
        "call_me": "Call me",
        "email": "Email",
        "password": "Password",
        "sign_in": "Sign in",
        "send": "Send my request",
    },
    "zh-CN": {
        "call_me": "请给我回电",
        "email": "邮箱",
        "password": "密码",
        "sign_in": "登录",
        "send": "提交申请",
    },
}


def log_call(staff, outcome: str, note: str = "") -> None:
    staff.click("#tab-call")
    staff.select_option("#call-outcome", outcome)
    if note:
        staff.fill("#call-note", note)
    with staff.expect_navigation():
        staff.locator("#pane-call form button[type=submit]").click()


def set_stage(staff, stage: str) -> None:
    staff.click("#tab-stage")
    staff.select_option("#stage-stage", stage)
    with staff.expect_navigation():
        staff.locator("#pane-stage form button[type=submit]").click()


@pytest.mark.parametrize("locale", ["en", "zh-CN"])
def test_a_trial_request_becomes_a_customer_whose_refund_shows_the_sales_history(
    app, browser, live_server, make_tenant, make_user, locale
):
    words = WORDS[locale]
    tenant = make_tenant(name="Huabei Telecom 华北通信")
    agent = make_user(tenant, "agent")
    with acting_for(app, tenant) as session:
        session.get(User, agent.id).takes_leads = True
        session.commit()
    prospect = browser.new_context(locale=locale, viewport=PHONE).new_page()
    staff = browser.new_context(locale=locale, viewport=DESK).new_page()

    # 1. The trial form on a phone, from a campaign link.
    prospect.goto(f"{live_server}/t/{tenant.slug}/trial?utm_source=wechat&utm_campaign=autumn")
    assert_fits_the_screen(prospect)
    assert_inputs_are_labelled(prospect)
    prospect.fill("#name", "赵六")
    prospect.fill("#company", "六六外呼")
    prospect.fill("#phone", "139 0013 9000")
    prospect.fill("#email", "zhao@example.test")
    prospect.fill("#need", "20 个坐席，下周开始<script>alert(1)</script>")
    prospect.check("#consent_contact")
    shoot(prospect, f"lead-1-trial-form-{locale}")
    with prospect.expect_navigation():
        prospect.get_by_role("button", name=words["call_me"]).click()

    # 2. The receipt: reference and promise.
    assert "LD-1001" in prospect.text_content("main")
    assert prospect.locator("#promise").count() == 1
    assert_fits_the_screen(prospect)
    shoot(prospect, f"lead-2-receipt-{locale}")

    # 3. The agent finds the lead, calls: no answer, then answered.
    staff.goto(f"{live_server}/t/{tenant.slug}/login")
    staff.get_by_label(words["email"]).fill(agent.email)
    staff.get_by_label(words["password"]).fill(PASSWORD)
    with staff.expect_navigation():
        staff.get_by_role("button", name=words["sign_in"]).click()
    staff.goto(f"{live_server}/t/{tenant.slug}/leads?view=mine")
    assert "赵六" in staff.text_content("table")
    shoot(staff, f"lead-3-list-{locale}")
    with staff.expect_navigation():
        staff.get_by_role("link", name="LD-1001").click()
    assert "<script>" in staff.text_content("main")  # shown as text, never run
    log_call(staff, "no_answer")
    log_call(staff, "answered", "Promised 20 seats at 99 each, unlimited minutes")
    set_stage(staff, "qualified")
    set_stage(staff, "won")
    assert_inputs_are_labelled(staff)
    shoot(staff, f"lead-4-won-{locale}")
    with acting_for(app, tenant) as session:
        lead = session.scalars(select(Lead)).one()
        assert lead.stage == "won" and lead.customer_id and lead.first_contacted_at

    # 4. Later the customer asks for a refund; the ticket shows the sales history.
    prospect.goto(f"{live_server}/t/{tenant.slug}/refund")
    prospect.fill("#name", "赵六")
    prospect.fill("#phone", "13900139000")
    prospect.select_option("#reason", "service_not_as_described")
    prospect.fill("#description", "销售说不限分钟，实际每月只有 1000 分钟。")
    prospect.check("#consent")
    with prospect.expect_navigation():
        prospect.get_by_role("button", name=words["send"]).click()
    staff.goto(f"{live_server}/t/{tenant.slug}/tickets/1001")
    history = staff.text_content("#sales-history")
    assert "LD-1001" in history and "Promised 20 seats at 99 each, unlimited minutes" in history
    shoot(staff, f"lead-5-ticket-sales-history-{locale}")
    staff.set_viewport_size(PHONE)
    staff.goto(f"{live_server}/t/{tenant.slug}/leads/LD-1001")
    assert_fits_the_screen(staff)
    shoot(staff, f"lead-6-lead-phone-{locale}")
