"""Each report in a real browser, in English and Chinese, on a laptop and a phone: it
opens, draws its chart, labels every control and fits the screen. Screenshots go to
SCREENSHOTS_DIR."""

import pytest

from tests.browser import (
    DESK,
    PHONE,
    assert_fits_the_screen,
    assert_inputs_are_labelled,
    needs_browser,
    shoot,
)
from tests.conftest import PASSWORD, acting_for
from tests.test_ticket_service import refund_request

pytestmark = needs_browser

REPORTS = ("", "/complaints", "/refunds", "/leads", "/agents")
TITLES = {"en": "Reports", "zh-CN": "报表"}


@pytest.mark.parametrize("locale", ["en", "zh-CN"])
def test_every_report_opens_with_its_chart_in_both_languages(
    app, browser, live_server, make_tenant, make_user, locale
):
    from crm.tickets import service as tickets

    tenant = make_tenant(name="Huabei Telecom 华北通信")
    manager = make_user(tenant, "manager")
    with acting_for(app, tenant) as session:
        tickets.submit_refund_request(refund_request(), nonce="browser-report", ip=None)
        session.commit()
    for viewport, size in (("desk", DESK), ("phone", PHONE)):
        page = browser.new_context(locale=locale, viewport=size).new_page()
        page.goto(f"{live_server}/t/{tenant.slug}/login")
        page.fill("input[name=email]", manager.email)
        page.fill("input[name=password]", PASSWORD)
        with page.expect_navigation():
            page.click("form:has(input[name=password]) button[type=submit]")
        for report in REPORTS:
            page.goto(f"{live_server}/t/{tenant.slug}/reports{report}?period=this_month")
            assert TITLES[locale] in page.text_content("main")
            assert page.locator("main svg[role=img] title").count() >= 1
            assert page.locator("main table").count() >= 1
            assert_inputs_are_labelled(page)
            assert_fits_the_screen(page)
            shoot(page, f"report{report.replace('/', '-') or '-sla'}-{viewport}-{locale}")
        page.context.close()
