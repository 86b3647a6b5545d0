"""Each ticket keeps its requester's details as submitted, and mail about it goes only to
the address given for it: a phone number typed by someone else (or a recycled virtual
number) never hands a case to another person."""

import re
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from crm.customers.models import Customer
from crm.notify.models import OutboxMessage
from crm.tickets import service as tickets
from tests.conftest import acting_for, login, submit
from tests.test_portal import good_fields, send_form

PHONE = "13800138900"
TRACK_RE = re.compile(r"https?://\S+/track/[A-Za-z0-9_-]+")


def submit_request(client, slug: str, **fields) -> int:
    """Send the hosted form; the new ticket's number."""
    response = send_form(client, slug, good_fields(phone=PHONE, **fields))
    assert response.status_code == 302, response.text
    return int(response.headers["Location"].rsplit("/", 1)[1])


def staff_reply(app, tenant, make_user, number: int, body: str) -> None:
    client = app.test_client()
    assert login(client, tenant, make_user(tenant, "agent")).status_code == 302
    url = f"/t/{tenant.slug}/tickets/{number}"
    response = submit(client, f"{url}/reply", {"reply-body": body}, form_page=url)
    assert response.status_code == 302, response.text


def mail_to(mailbox, address: str) -> list:
    pairs = zip(mailbox.messages, mailbox.recipients, strict=True)
    return [message for message, rcpts in pairs if address in rcpts]


def test_someone_typing_the_victims_phone_never_receives_the_victims_case(
    make_app, smtp_url, smtp_server, make_tenant, make_user
):
    """The probe's attack: the victim gave no email; a stranger submits with the victim's
    phone (and name) and their own email. The victim's ticket must never mail them."""
    mail_app = make_app(smtp_url=smtp_url)
    tenant = make_tenant()
    victim = submit_request(mail_app.test_client(), tenant.slug, name="王芳", email="")
    submit_request(mail_app.test_client(), tenant.slug, name="王芳", email="attacker@evil.test")
    assert len(mail_to(smtp_server, "attacker@evil.test")) == 1  # their own receipt, nothing more

    staff_reply(mail_app, tenant, make_user, victim, "我们已核实您的余额，将于三日内退回。")

    assert len(mail_to(smtp_server, "attacker@evil.test")) == 1
    with acting_for(mail_app, tenant) as session:
        ticket = tickets.ticket_by_number(victim)
        assert ticket.requester.email is None
        mailed = session.scalars(select(OutboxMessage).where(OutboxMessage.ticket_id == ticket.id)).all()
        assert mailed == []  # nowhere to send: the victim gave no address
        customers = session.scalars(select(Customer).where(Customer.phone == "+8613800138900")).all()
        assert [customer.email for customer in customers] == [None]  # the record is untouched


@pytest.mark.parametrize("first_has_email", [True, False], ids=["first-with-email", "first-without"])
def test_two_people_sharing_a_phone_each_keep_their_own_details_and_mail(
    make_app, smtp_url, smtp_server, make_tenant, make_user, first_has_email
):
    mail_app = make_app(smtp_url=smtp_url)
    tenant = make_tenant()
    first_email = "first@example.test" if first_has_email else ""
    first = submit_request(mail_app.test_client(), tenant.slug, name="张伟", email=first_email)
    second = submit_request(
        mail_app.test_client(), tenant.slug, name="刘洋", email="second@example.test", account_ref="ACC-2"
    )

    # The second person's receipt reaches them, under their own name.
    [receipt] = mail_to(smtp_server, "second@example.test")
    assert "刘洋" in receipt.get_content() and "张伟" not in receipt.get_content()
    assert len(mail_to(smtp_server, "first@example.test")) == (1 if first_has_email else 0)

    staff_reply(mail_app, tenant, make_user, first, "关于第一位客户的答复")
    staff_reply(mail_app, tenant, make_user, second, "关于第二位客户的答复")
    for address, mine, theirs in (
        ("first@example.test", "第一位", "第二位"),
        ("second@example.test", "第二位", "第一位"),
    ):
        bodies = [message.get_content() for message in mail_to(smtp_server, address)]
        assert not any(theirs in body for body in bodies)
        if address == "second@example.test" or first_has_email:
            assert any(mine in body for body in bodies)

    # Staff see, and find, each ticket by the details typed for it.
    client = mail_app.test_client()
    assert login(client, tenant, make_user(tenant, "agent")).status_code == 302
    page = client.get(f"/t/{tenant.slug}/tickets/{second}")
    assert "刘洋" in page.text and "second@example.test" in page.text and "ACC-2" in page.text
    assert "first@example.test" not in page.text
    for query in ("刘洋", "second@example.test"):
        found = client.get(f"/t/{tenant.slug}/tickets", query_string={"view": "all", "q": query})
        assert f"RF-{second}" in found.text and f"RF-{first}" not in found.text, query


def test_every_link_the_victims_ticket_mails_goes_to_the_address_its_requester_gave(
    make_app, smtp_url, smtp_server, make_tenant, make_user
):
    mail_app = make_app(smtp_url=smtp_url)
    tenant = make_tenant()
    victim = submit_request(mail_app.test_client(), tenant.slug, name="陈静", email="chen@example.test")
    submit_request(mail_app.test_client(), tenant.slug, name="陈静", email="other@evil.test")
    staff_reply(mail_app, tenant, make_user, victim, "请补充您的付款截图。")

    with acting_for(mail_app, tenant) as session:
        ticket = tickets.ticket_by_number(victim)
        recipients = session.scalars(
            select(OutboxMessage.to_address).where(OutboxMessage.ticket_id == ticket.id)
        ).all()
    assert recipients and set(recipients) == {"chen@example.test"}
    for message in mail_to(smtp_server, "other@evil.test"):
        for link in TRACK_RE.findall(message.get_content()):
            page = mail_app.test_client().get(urlsplit(link).path)
            assert page.status_code == 200 and f"RF-{victim}" not in page.text
