"""The SLA pages in a real browser, in English and in Chinese: a manager reads a ticket's
deadlines and why they fall when they do, changes the SLA policy, and opens the business
calendars. Every page must fit a phone and label its inputs. Screenshots go to
SCREENSHOTS_DIR."""

from datetime import timedelta

import pytest
import time_machine

from crm.columns import utcnow
from tests.browser import (
    DESK,
    PHONE,
    assert_fits_the_screen,
    assert_inputs_are_labelled,
    needs_browser,
    shoot,
)
from tests.conftest import PASSWORD
from tests.test_sla_pages import refund_received

pytestmark = needs_browser

WORDS = {
    "en": {
        "email": "Email",
        "password": "Password",
        "sign_in": "Sign in",
        "deadlines": "Deadlines",
        "first_response": "First response",
        "overdue": "Overdue",
        "late": "late by",
        "on_track": "On track",
        "because": "Because:",
        "calendar": "calendar “Business hours v1”",
        "policy_version": "SLA policy v1",
        "policy": "SLA policy",
        "save": "Save as a new version",
        "saved": "SLA policy saved as version 2.",
        "calendars": "Business calendars",
        "weekly_hours": "Weekly hours",
        "china": "Mainland China's holidays",
        "regulatory": "Regulatory deadlines",
    },
    "zh-CN": {
        "email": "邮箱",
        "password": "密码",
        "sign_in": "登录",
        "deadlines": "期限",
        "first_response": "首次响应",
        "overdue": "已超时",
        "late": "已超时",
        "on_track": "正常",
        "because": "计算依据：",
        "calendar": "按日历“Business hours v1”计",
        "policy_version": "SLA 策略 v1",
        "policy": "SLA 策略",
        "save": "保存为新版本",
        "saved": "SLA 策略已保存为第 2 版。",
        "calendars": "工作日历",
        "weekly_hours": "每周工作时间",
        "china": "中国大陆法定节假日",
        "regulatory": "监管时限",
    },
}


def check_and_shoot(page, name: str) -> None:
    """The page at desk and phone widths: it fits, its inputs are labelled, and it is
    photographed at both."""
    for label, viewport in (("desk", DESK), ("phone", PHONE)):
        page.set_viewport_size(viewport)
        assert_fits_the_screen(page)
        assert_inputs_are_labelled(page)
        shoot(page, f"{name}-{label}")


@pytest.mark.parametrize("locale", ["en", "zh-CN"])
def test_a_manager_reads_a_tickets_deadlines_and_changes_the_sla_policy(
    app, browser, live_server, make_tenant, make_user, locale
):
    words = WORDS[locale]
    tenant = make_tenant(name="Huabei Telecom 华北通信")
    manager = make_user(tenant, "manager")
    # Two weeks ago: both of its deadlines have long passed.
    with time_machine.travel(utcnow() - timedelta(days=14), tick=False):
        overdue = refund_received(app, tenant)
    fresh = refund_received(app, tenant)
    context = browser.new_context(locale=locale, viewport=DESK)
    page = context.new_page()
    base = f"{live_server}/t/{tenant.slug}"

    page.goto(f"{base}/login")
    page.get_by_label(words["email"]).fill(manager.email)
    page.get_by_label(words["password"]).fill(PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name=words["sign_in"]).click()

    # 1. The ticket's deadlines: the standing in words, and the reason for each time.
    page.goto(f"{base}/tickets/{overdue}")
    card = page.locator("section", has=page.get_by_role("heading", name=words["deadlines"], exact=True))
    assert card.is_visible()
    first = card.locator("li").first
    assert words["first_response"] in first.text_content()
    badge = first.locator(".badge")
    assert words["overdue"] in badge.inner_text()  # said in words, not by colour alone
    assert words["late"] in first.text_content()
    reason = first.locator(".small").first.inner_text()
    assert reason.startswith(words["because"])
    assert words["calendar"] in reason and words["policy_version"] in reason
    check_and_shoot(page, f"sla-1-ticket-overdue-{locale}")

    page.set_viewport_size(DESK)
    page.goto(f"{base}/tickets/{fresh}")
    assert words["on_track"] in card.locator("li").first.locator(".badge").inner_text()

    # 2. The SLA policy: change the second rule's first-response target and save.
    page.goto(f"{base}/admin/sla")
    assert page.get_by_role("heading", name=words["policy"]).is_visible()
    check_and_shoot(page, f"sla-2-policy-{locale}")
    page.set_viewport_size(DESK)
    page.locator("#rule_rows-1-first_response").fill("2h")
    with page.expect_navigation():
        page.get_by_role("button", name=words["save"]).click()
    assert words["saved"] in page.locator(".alert").first.inner_text()
    assert page.locator("#rule_rows-1-first_response").input_value() == "2h"
    assert "v2" in page.locator("h1").inner_text()
    check_and_shoot(page, f"sla-3-policy-saved-{locale}")

    # 3. The calendars, and the calendar's own page.
    page.set_viewport_size(DESK)
    page.goto(f"{base}/admin/calendars")
    assert page.get_by_role("heading", name=words["calendars"]).is_visible()
    check_and_shoot(page, f"sla-4-calendars-{locale}")
    page.set_viewport_size(DESK)
    with page.expect_navigation():
        page.get_by_role("link", name="Business hours").click()
    assert page.get_by_label(words["weekly_hours"]).input_value().startswith("mon-fri 09:00-18:00")
    assert page.get_by_role("heading", name=words["china"]).is_visible()
    check_and_shoot(page, f"sla-5-calendar-{locale}")

    # 4. The regulatory deadline rules.
    page.set_viewport_size(DESK)
    page.goto(f"{base}/admin/deadlines")
    assert page.get_by_role("heading", name=words["regulatory"]).first.is_visible()
    check_and_shoot(page, f"sla-6-deadlines-{locale}")
    context.close()
