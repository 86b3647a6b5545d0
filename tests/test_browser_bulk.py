"""Bulk changes, saved views and the CSV export in a real browser (issue 17, section 3),
in English on a laptop and Chinese on a phone: tick two tickets, assign them, watch the
run finish; save the filter as a view and open it."""

import pytest

from tests.browser import (
    DESK,
    PHONE,
    assert_fits_the_screen,
    assert_inputs_are_labelled,
    needs_browser,
    shoot,
    signed_in_page,
)
from tests.conftest import PASSWORD, acting_for
from tests.test_ticket_service import refund_request

pytestmark = needs_browser

TEXT = {
    "en": {"bulk": "Change several tickets", "done": "Done: 2 changed", "save": "Save as a view"},
    "zh-CN": {"bulk": "批量修改工单", "done": "已完成：修改 2 个", "save": "保存为视图"},
}


@pytest.mark.parametrize(("locale", "viewport"), [("en", DESK), ("zh-CN", PHONE)])
def test_a_manager_assigns_two_tickets_at_once_and_saves_the_filter(
    app, browser, live_server, make_tenant, make_user, locale, viewport
):
    from crm.tickets import service as tickets

    tenant = make_tenant()
    manager = make_user(tenant, "manager")
    with acting_for(app, tenant) as session:
        for n in range(3):
            tickets.submit_refund_request(refund_request(), nonce=f"bulk-browser-{n}", ip=None)
        session.commit()
    text = TEXT[locale]
    base = f"{live_server}/t/{tenant.slug}"
    page = signed_in_page(
        browser, base, manager.email, PASSWORD, locale=locale, viewport=viewport, confirm=True
    )

    page.goto(f"{base}/tickets?view=all")
    page.locator("input[name=tickets]").nth(0).check()
    page.locator("input[name=tickets]").nth(1).check()
    page.click(f"summary:has-text('{text['bulk']}')")
    page.select_option("#bulk-action", "assign")
    page.select_option("#bulk-assignee", str(manager.id))
    assert_inputs_are_labelled(page)
    assert_fits_the_screen(page)
    shoot(page, f"bulk-queue-{locale}")
    with page.expect_navigation():
        page.click("#bulk-form button[type=submit]")
    assert text["done"] in page.text_content("main")
    assert_fits_the_screen(page)
    shoot(page, f"bulk-run-{locale}")

    page.goto(f"{base}/tickets?view=all&priority=normal")
    page.fill("#view-name", "Normal 普通")
    with page.expect_navigation():
        page.click(f"button:has-text('{text['save']}')")
    assert page.locator(".saved-views a", has_text="Normal 普通").count() == 1
    page.goto(f"{base}/tickets")
    with page.expect_navigation():
        page.click(".saved-views a:has-text('Normal 普通')")
    assert "priority=normal" in page.url
    assert page.locator("[data-queue-rows] > tr").count() == 3
    page.context.close()
