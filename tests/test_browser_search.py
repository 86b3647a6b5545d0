"""Full-text search and a customer's erasure in a real browser (issue 17, sections 2 and
4), in English on a laptop and Chinese on a phone: search the queue for a word said on a
ticket and see where it was said; erase a customer and see their words gone."""

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
    "en": {"erase": "Erase this person's personal data", "erased": "Erased at the customer's request."},
    "zh-CN": {"erase": "删除此人的个人信息", "erased": "已应客户要求删除。"},
}


@pytest.mark.parametrize(("locale", "viewport"), [("en", DESK), ("zh-CN", PHONE)])
def test_a_manager_finds_a_ticket_by_its_words_then_erases_its_customer(
    app, browser, live_server, make_tenant, make_user, locale, viewport
):
    from sqlalchemy import update

    from crm.tickets import service as tickets
    from crm.tickets.models import Ticket

    tenant = make_tenant()
    manager = make_user(tenant, "manager")
    with acting_for(app, tenant) as session:
        wanted = tickets.submit_refund_request(
            refund_request(description="号码被停用后仍然扣费，请退还多扣的月租。"), nonce="find-1", ip=None
        ).ticket
        tickets.submit_refund_request(
            refund_request(description="想咨询套餐", customer={"name": "李雷", "phone": "13900139000"}),
            nonce="find-2",
            ip=None,
        )
        reference, customer_id = wanted.reference, wanted.customer_id
        session.execute(update(Ticket).where(Ticket.id == wanted.id).values(status="closed"))
        session.commit()
    text = TEXT[locale]
    base = f"{live_server}/t/{tenant.slug}"
    page = signed_in_page(
        browser, base, manager.email, PASSWORD, locale=locale, viewport=viewport, confirm=True
    )

    page.goto(f"{base}/tickets?view=all")
    page.fill("input[name=q]", "月租")
    with page.expect_navigation():
        page.press("input[name=q]", "Enter")
    rows = page.locator("[data-queue-rows] tr")
    assert rows.count() == 1 and reference in rows.first.text_content()
    assert page.locator("[data-queue-rows] mark").first.text_content() == "月租"
    assert_fits_the_screen(page)
    shoot(page, f"search-{locale}")

    page.goto(f"{base}/customers/{customer_id}")
    page.click(f'summary:has-text("{text["erase"]}")')
    page.select_option("#erase-channel", "phone")
    page.check("#erase-confirm")
    assert_inputs_are_labelled(page)
    assert_fits_the_screen(page)
    shoot(page, f"erase-{locale}")
    with page.expect_navigation():
        page.click("#erase button[type=submit]")
    assert "13800138000" not in page.text_content("main")
    page.goto(f"{base}/tickets/{reference.split('-')[1]}")
    assert text["erased"] in page.text_content("main") and "月租" not in page.text_content("main")
    page.goto(f"{base}/tickets?view=all&q=%E6%9C%88%E7%A7%9F")
    assert page.locator("[data-queue-rows] a.fw-semibold").count() == 0
