"""Driving Debian's Chromium with Playwright: a live server on loopback, the browser,
and checks every page should pass (fits a phone, every input labelled)."""

import importlib
import os
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

CHROMIUM = "/usr/bin/chromium"
# In CI a browser test that cannot run fails: a green CI run has run them all.
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
# Browser tests mark themselves with this: they skip where chromium is not installed,
# except in CI.
needs_browser = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not IN_CI and not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed"
    ),
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
    if not Path(CHROMIUM).exists():
        if IN_CI:
            pytest.fail(f"CI must run the browser tests, and {CHROMIUM} is not installed")
        pytest.skip("Debian's chromium is not installed")
    if IN_CI:
        sync_api = importlib.import_module("playwright.sync_api")
    else:
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


def sign_in(page, base: str, email: str, password: str) -> None:
    """Sign in on ``base``'s (``…/t/<slug>``) page as a person does."""
    page.goto(f"{base}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.click("form:has(input[name=password]) button[type=submit]")


def signed_in_page(
    browser, base: str, email: str, password: str, *, locale: str, viewport: dict, confirm: bool = False
):
    """A new page in ``locale`` on a screen of ``viewport``, signed in; with ``confirm``,
    every confirm() dialog is accepted."""
    page = browser.new_context(locale=locale, viewport=viewport).new_page()
    if confirm:
        page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, base, email, password)
    return page
