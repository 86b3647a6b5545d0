"""Working the queue and a ticket from the keyboard (issue 17, section 6), in a real
browser: "?" lists the shortcuts, j/k choose a ticket, o opens it, r and n open the
reply and the note with the cursor in the box, letters typed there stay text, Escape
leaves the box, u goes back to the queue."""

import pytest

from tests.browser import DESK, needs_browser, shoot, signed_in_page
from tests.conftest import PASSWORD, acting_for
from tests.test_ticket_service import refund_request

pytestmark = needs_browser

TEXT = {
    "en": {"title": "Keyboard shortcuts", "note": "Internal note"},
    "zh-CN": {"title": "键盘快捷键", "note": "内部备注"},
}


@pytest.mark.parametrize("locale", ["en", "zh-CN"])
def test_an_agent_works_the_queue_without_the_mouse(
    app, browser, live_server, make_tenant, make_user, locale
):
    from crm.tickets import service as tickets

    tenant = make_tenant()
    agent = make_user(tenant, "agent")
    with acting_for(app, tenant) as session:
        for n in range(3):
            tickets.submit_refund_request(refund_request(), nonce=f"keys-{n}", ip=None)
        session.commit()
    base = f"{live_server}/t/{tenant.slug}"
    page = signed_in_page(browser, base, agent.email, PASSWORD, locale=locale, viewport=DESK)
    page.goto(f"{base}/tickets")

    page.keyboard.press("?")
    assert page.locator("dialog#shortcuts").is_visible()
    assert TEXT[locale]["title"] in page.locator("dialog#shortcuts").inner_text()
    shoot(page, f"keyboard-shortcuts-{locale}")
    page.keyboard.press("Escape")
    assert not page.locator("dialog#shortcuts").is_visible()

    rows = page.locator("[data-queue-rows] > tr")
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("k")
    page.keyboard.press("j")
    assert rows.nth(1).get_attribute("class") == "table-active"
    second = rows.nth(1).locator("a").first.inner_text()
    with page.expect_navigation():
        page.keyboard.press("o")
    assert second in page.locator("h1").inner_text()

    page.keyboard.press("r")
    assert page.evaluate("document.activeElement.name") == "reply-body"
    page.keyboard.type("jk u r n ?")  # text, not shortcuts
    assert page.input_value("textarea[name=reply-body]") == "jk u r n ?"
    assert not page.locator("dialog#shortcuts").is_visible()
    page.keyboard.press("Escape")
    page.keyboard.press("n")
    assert page.evaluate("document.activeElement.name") == "note-body"
    assert page.locator("#tab-note").get_attribute("aria-selected") == "true"
    page.keyboard.press("Escape")
    with page.expect_navigation():
        page.keyboard.press("u")
    assert page.url.split("?")[0].endswith(f"/t/{tenant.slug}/tickets")
    page.context.close()
