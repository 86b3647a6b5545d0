"""The outbox never holds a usable tracking link: a manager reading a held or queued
message cannot act as the customer. The link is minted when the message is sent."""

from urllib.parse import urlsplit

from tests.test_email import (
    TRACKING_LINK_RE,
    outbox_rows,
    staff_client,
    submit_refund_form,
)


def test_a_held_message_shows_no_link_and_gets_a_working_one_when_sent(
    make_app, smtp_url, smtp_server, make_tenant, make_user
):
    held_app = make_app()
    tenant = make_tenant()
    submit_refund_form(held_app.test_client(), tenant, email="lilei@example.test")
    [row] = outbox_rows(held_app, tenant)
    assert row.status == "held" and "/track/" not in row.body

    for role in ("admin", "manager"):
        page = staff_client(held_app, tenant, make_user, role).get(f"/t/{tenant.slug}/admin/outbox")
        assert "We have received your refund request RF-1001." in page.text
        assert "/track/" not in page.text and "[tracking-link]" not in page.text
        ticket_page = staff_client(held_app, tenant, make_user, role).get(f"/t/{tenant.slug}/tickets/1001")
        assert "/track/" not in ticket_page.text  # the thread's copy of the email

    sender = make_app(smtp_url=smtp_url).test_cli_runner()
    assert "sent 1" in sender.invoke(args=["outbox", "send", "--tenant", tenant.slug]).output
    [link] = TRACKING_LINK_RE.findall(smtp_server.messages[0].get_content())
    tracking = held_app.test_client().get(urlsplit(link).path)
    assert tracking.status_code == 200 and "RF-1001" in tracking.text
    [row] = outbox_rows(held_app, tenant)
    assert row.status == "sent" and link.rsplit("/", 1)[1] not in row.body
