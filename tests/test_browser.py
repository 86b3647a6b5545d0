"""The staff pages in a real browser (Debian's Chromium driven by Playwright): sign in,
find your own sign-in on the audit page, in English and Chinese, on a desk and a phone."""

import pytest

from tests.browser import (
    DESK,
    PHONE,
    assert_fits_the_screen,
    assert_inputs_are_labelled,
    needs_browser,
    shoot,
)
from tests.conftest import PASSWORD

pytestmark = needs_browser


@pytest.mark.parametrize("locale, viewport", [("en", DESK), ("zh-CN", PHONE)])
def test_admin_signs_in_and_sees_their_login_on_the_audit_page(
    browser, live_server, make_tenant, make_user, locale, viewport
):
    tenant = make_tenant(name="Huabei Telecom 华北通信")
    admin = make_user(tenant, "admin")
    context = browser.new_context(locale=locale, viewport=viewport)
    page = context.new_page()
    tag = f"{locale}-{viewport['width']}"

    page.goto(f"{live_server}/t/{tenant.slug}/login")
    assert page.locator("html").get_attribute("lang") == ("en" if locale == "en" else "zh-CN")
    assert tenant.name in page.text_content("header")
    assert_fits_the_screen(page)
    assert_inputs_are_labelled(page)
    shoot(page, f"login-{tag}")

    page.get_by_label("Email" if locale == "en" else "邮箱").fill(admin.email)
    page.get_by_label("Password" if locale == "en" else "密码").fill(PASSWORD)
    page.get_by_role("button", name="Sign in" if locale == "en" else "登录").click()
    page.wait_for_url(f"**/t/{tenant.slug}/")
    assert_fits_the_screen(page)
    shoot(page, f"home-{tag}")

    page.goto(f"{live_server}/t/{tenant.slug}/audit")
    row = page.locator("tbody tr").first
    assert "auth.login" in row.text_content()
    assert admin.email in row.text_content()
    assert_inputs_are_labelled(page)
    shoot(page, f"audit-{tag}")

    page.goto(f"{live_server}/t/{tenant.slug}/admin/users")
    assert admin.email in page.text_content("table")
    assert_inputs_are_labelled(page)
    shoot(page, f"users-{tag}")

    page.goto(f"{live_server}/t/{tenant.slug}/account")
    assert_inputs_are_labelled(page)
    shoot(page, f"account-{tag}")
    context.close()


def test_language_buttons_switch_the_page_to_chinese_and_back(browser, live_server, make_tenant):
    tenant = make_tenant()
    page = browser.new_page(locale="en", viewport=DESK)
    page.goto(f"{live_server}/t/{tenant.slug}/login")
    page.get_by_role("button", name="简体中文").click()
    assert page.get_by_role("heading", name="员工登录").is_visible()
    assert page.get_by_role("button", name="简体中文").get_attribute("aria-pressed") == "true"
    page.get_by_role("button", name="English").click()
    assert page.get_by_role("heading", name="Staff sign-in").is_visible()
    page.close()


def test_wrong_password_shows_the_message_and_keeps_the_email(browser, live_server, make_tenant, make_user):
    tenant = make_tenant()
    user = make_user(tenant)
    page = browser.new_page(locale="en", viewport=PHONE)
    page.goto(f"{live_server}/t/{tenant.slug}/login")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").text_content().strip() == "The email or password is not correct."
    assert page.get_by_label("Email").input_value() == user.email
    shoot(page, "login-failed-en-390")
    page.close()
