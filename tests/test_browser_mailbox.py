"""The inbound mailbox's page in a real browser (issue 17, section 1), in English on a
laptop and Chinese on a phone: an admin gives the mailbox of a real Dovecot, the desk
signs in before keeping it, and Fetch now turns its unread mail into a ticket."""

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
from tests.conftest import PASSWORD
from tests.imap import PASSWORD as MAILBOX_PASSWORD
from tests.imap import SUPPORT, put
from tests.test_inbound_email import mail

pytestmark = needs_browser

TEXT = {
    "en": {"saved": "Mailbox saved", "fetched": "Fetched 1: 0 filed on their tickets, 1 new tickets"},
    "zh-CN": {"saved": "邮箱已保存", "fetched": "已收取 1 封：0 封归入原工单，新建 1 个工单"},
}


@pytest.mark.parametrize(("locale", "viewport"), [("en", DESK), ("zh-CN", PHONE)])
def test_an_admin_sets_the_mailbox_and_fetches_its_mail(
    app,
    browser,
    live_server,
    make_tenant,
    make_user,
    dovecot,
    locale,
    viewport,
):
    tenant = make_tenant()
    admin = make_user(tenant, "admin")
    text = TEXT[locale]
    base = f"{live_server}/t/{tenant.slug}"
    page = signed_in_page(browser, base, admin.email, PASSWORD, locale=locale, viewport=viewport)
    app.config["WEBHOOKS_ALLOW_PRIVATE"] = True  # the test's Dovecot is on loopback
    try:
        page.goto(f"{base}/admin/mailbox")
        page.select_option("#security", "imap")
        page.fill("#host", "127.0.0.1")
        page.fill("#port", str(dovecot))
        page.fill("#user", SUPPORT)
        page.fill("#password", MAILBOX_PASSWORD)
        assert_inputs_are_labelled(page)
        assert_fits_the_screen(page)
        with page.expect_navigation():
            page.click("form[aria-labelledby=mailbox-title] button[type=submit]")
        assert text["saved"] in page.text_content("main")
        assert f"imap://{SUPPORT}@127.0.0.1:{dovecot}/INBOX" in page.text_content("main")
        assert page.input_value("#password") == ""  # never shown again

        put(
            dovecot,
            mail(to=SUPPORT, body="我的号码被停用了。", subject="退款", sender=("赵敏", "zhao@example.test")),
        )
        with page.expect_navigation():
            page.click("form[action$='/admin/mailbox/fetch'] button")
        assert text["fetched"] in page.text_content("main")
        assert_fits_the_screen(page)
        shoot(page, f"mailbox-{locale}")
    finally:
        app.config.pop("WEBHOOKS_ALLOW_PRIVATE")
