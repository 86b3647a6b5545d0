"""The staff pages in a real browser (Debian's Chromium driven by Playwright): sign in,
find your own sign-in on the audit page, in English and Chinese, on a desk and a phone."""

import os
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from tests.conftest import PASSWORD

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed"),
]
SHOTS = os.environ.get("SCREENSHOTS_DIR")
PHONE = {"width": 390, "height": 844}
DESK = {"width": 1280, "height": 860}


@pytest.fixture(scope="module")
def live_server(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        yield browser
        browser.close()


def shoot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def assert_fits_the_screen(page) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"page is {overflow}px wider than the screen"


def assert_inputs_are_labelled(page) -> None:
    unlabelled = page.evaluate(
        """[...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
             .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
             .map(el => el.name)"""
    )
    assert unlabelled == []


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
