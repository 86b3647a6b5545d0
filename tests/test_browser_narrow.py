"""The queue and a ticket's actions on a phone, a laptop and a wide screen: every view
tab and every action tab is on screen and can be clicked, and no page scrolls sideways."""

import pytest

from crm.tickets import service as tickets
from tests.browser import assert_fits_the_screen, needs_browser, shoot
from tests.conftest import PASSWORD, acting_for, unique
from tests.test_ticket_service import refund_request

pytestmark = needs_browser

WIDTHS = (360, 1280, 1920)


def on_screen_and_clickable(page, locator) -> None:
    """The element is inside the viewport's width and is the one a click there hits."""
    locator.scroll_into_view_if_needed()
    box = locator.bounding_box()
    width = page.viewport_size["width"]
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= width, locator
    locator.click(trial=True)  # fails if another element would take the click


@pytest.mark.parametrize("width", WIDTHS)
def test_every_queue_view_and_ticket_action_can_be_reached(
    app, browser, live_server, make_tenant, make_user, width
):
    tenant = make_tenant()
    agent = make_user(tenant, "manager")
    with acting_for(app, tenant) as session:
        tickets.submit_refund_request(refund_request(), nonce=unique("n"), ip=None)
        session.commit()
    page = browser.new_context(viewport={"width": width, "height": 900}).new_page()
    page.goto(f"{live_server}/t/{tenant.slug}/login")
    page.get_by_label("Email").fill(agent.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"**/t/{tenant.slug}/")

    page.goto(f"{live_server}/t/{tenant.slug}/tickets?view=all")
    views = page.locator(".queue-views .nav-link")
    assert views.count() == 11
    for index in range(views.count()):
        on_screen_and_clickable(page, views.nth(index))
    row = page.locator(".queue-table tbody tr").first
    assert "王小明" in row.inner_text() and "RF-1001" in row.inner_text()
    assert_fits_the_screen(page)
    shoot(page, f"queue-{width}")

    page.goto(f"{live_server}/t/{tenant.slug}/tickets/1001")
    tabs = page.get_by_role("tab")
    assert tabs.count() >= 5
    for index in range(tabs.count()):
        tab = tabs.nth(index)
        on_screen_and_clickable(page, tab)
        tab.click()
        assert tab.get_attribute("aria-selected") == "true"
    assert_fits_the_screen(page)
    shoot(page, f"ticket-{width}")
