"""Staff hear when a ticket needs them (issue 11, section 6): a customer's reply on the
tracking page and a customer's "not satisfied" reach the assignee (the managers when
nobody has the ticket), and a refund decision waiting for approval reaches the managers
who may approve it; under the header's bell and by email (a real SMTP server), unless
the person chose the app only. Never another tenant's staff."""

import re

import pytest
from sqlalchemy import select

from crm.audit.models import AuditEvent
from crm.audit.service import Actor
from crm.auth import service as auth
from crm.auth.models import User
from crm.notify.models import OutboxMessage
from crm.tickets import service as tickets
from crm.tickets.resolution import NO_REFUND_REQUESTED
from tests import test_refunds
from tests.conftest import CSRF_RE, acting_for, login, submit, unique
from tests.test_refunds import FULL, PARTIAL, WEDNESDAY_10AM, decide, received, staff_client
from tests.test_refunds import text_of as read
from tests.test_sla import travel
from tests.test_ticket_service import refund_request

# A fixture of another suite: the refund desk (the mail fixtures are everyone's).
desk = test_refunds.desk


def new_ticket(app, tenant, *, assignee=None, resolved_by=None) -> tuple[str, str]:
    """A refund request from the form, perhaps assigned or resolved; its reference and
    tracking page."""
    with acting_for(app, tenant) as session:
        submission = tickets.submit_refund_request(refund_request(), nonce=unique("n"), ip=None)
        ticket = submission.ticket
        if assignee is not None:
            tickets.assign(ticket, assignee.id, user=session.get(User, assignee.id), ip=None)
        if resolved_by is not None:
            tickets.resolve(
                ticket,
                "No refund is due.",
                user=session.get(User, resolved_by.id),
                ip=None,
                no_refund_reason=NO_REFUND_REQUESTED,
            )
        session.commit()
        return ticket.reference, f"/t/{tenant.slug}/track/{submission.tracking_token}"


def customer_posts(client, tracking_path: str, what: str, body: str):
    """The customer's button on the tracking page: "reply" or "not-satisfied"."""
    csrf = CSRF_RE.search(client.get(tracking_path).text).group(1)
    response = client.post(f"{tracking_path}/{what}", data={"csrf_token": csrf, "body": body})
    assert response.status_code == 302, response.text
    return response


def bell(app, tenant, user) -> tuple[str, str]:
    """What ``user`` sees signed in: the header's notifications link, and the
    notifications page's list."""
    client = app.test_client()
    assert login(client, tenant, user).status_code == 302
    home = client.get(f"/t/{tenant.slug}/")
    header = re.search(r'<a [^>]*href="[^"]*/notifications"[^>]*>.*?</a>', home.text, re.S).group(0)
    page = client.get(f"/t/{tenant.slug}/notifications")
    assert page.status_code == 200
    start = page.text.index('<ul class="list-group">')
    items = page.text[start : page.text.index("</ul>", start)]
    return read(header), read(items)


def outbox_to(app, tenant, address: str) -> list[OutboxMessage]:
    with acting_for(app, tenant) as session:
        rows = list(session.scalars(select(OutboxMessage).where(OutboxMessage.to_address == address)))
        session.expunge_all()
        return rows


def notified_events(app, tenant) -> list[dict]:
    with acting_for(app, tenant) as session:
        query = (
            select(AuditEvent).where(AuditEvent.action == "ticket.staff_notified").order_by(AuditEvent.seq)
        )
        return [{"subject": event.subject_id, **event.data} for event in session.scalars(query)]


def chosen(account_page: str) -> str:
    """The label of the notification choice the account page shows selected."""
    radios = re.findall(
        r'<input ([^>]*name="notify-email_notifications"[^>]*)>\s*<label[^>]*>([^<]*)<', account_page
    )
    (label,) = [label for attributes, label in radios if re.search(r"\bchecked\b", attributes)]
    return label


def set_locale(app, tenant, user, locale: str) -> None:
    with acting_for(app, tenant) as session:
        auth.set_locale(session.get(User, user.id), locale, actor=Actor.operator("test"))
        session.commit()


# --- a customer's reply --------------------------------------------------------------------


def test_a_customers_reply_reaches_the_assignee_in_the_app_and_by_email(
    make_app, smtp_url, smtp_server, make_tenant, make_user
):
    mail_app = make_app(smtp_url=smtp_url)
    tenant = make_tenant()
    agent, other_agent, manager = (make_user(tenant, role) for role in ("agent", "agent", "manager"))
    reference, tracking = new_ticket(mail_app, tenant, assignee=agent)

    customer_posts(mail_app.test_client(), tracking, "reply", "Here is the receipt.")

    header, items = bell(mail_app, tenant, agent)
    assert "Notifications 1 unread" in header
    assert f"The customer replied · {reference}" in items and "(unread)" in items
    for bystander in (other_agent, manager):
        header, items = bell(mail_app, tenant, bystander)
        assert "unread" not in header and "No notifications." in items

    mails = [
        m for m, to in zip(smtp_server.messages, smtp_server.recipients, strict=True) if to == [agent.email]
    ]
    assert len(mails) == 1
    assert mails[0]["Subject"] == f"[{reference}] The customer replied"
    body = mails[0].get_content()
    assert f"The customer replied on {reference}." in body
    assert re.search(rf"https?://\S+/t/{tenant.slug}/tickets/\d+", body)
    assert "Here is the receipt." not in body  # the message itself stays in the desk
    assert not any(to in ([other_agent.email], [manager.email]) for to in smtp_server.recipients)
    assert notified_events(mail_app, tenant)[-1]["user_ids"] == [agent.id]
    assert notified_events(mail_app, tenant)[-1]["event"] == "customer_reply"
    assert notified_events(mail_app, tenant)[-1]["to"] == "assignee"


def test_a_reply_on_a_ticket_nobody_has_goes_to_the_managers_and_admins(app, client, make_tenant, make_user):
    tenant = make_tenant()
    agent, manager, admin, auditor = (make_user(tenant, r) for r in ("agent", "manager", "admin", "auditor"))
    reference, tracking = new_ticket(app, tenant)

    customer_posts(client, tracking, "reply", "Any news?")

    for user in (manager, admin):
        assert f"The customer replied · {reference}" in bell(app, tenant, user)[1]
        assert len(outbox_to(app, tenant, user.email)) == 1
    for user in (agent, auditor):
        assert "No notifications." in bell(app, tenant, user)[1]
        assert outbox_to(app, tenant, user.email) == []
    assert notified_events(app, tenant)[-1]["to"] == "managers"


# --- "not satisfied" -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("locale", "label", "subject"),
    [
        ("en", "The customer is not satisfied", "The customer is not satisfied"),
        ("zh_CN", "客户对处理结果不满意", "客户对处理结果不满意"),
    ],
)
def test_not_satisfied_reaches_the_assignee_in_their_language(
    app, client, make_tenant, make_user, locale, label, subject
):
    tenant = make_tenant()
    agent = make_user(tenant, "agent")
    set_locale(app, tenant, agent, locale)
    reference, tracking = new_ticket(app, tenant, assignee=agent, resolved_by=agent)

    customer_posts(client, tracking, "not-satisfied", "I paid twice.")

    assert f"{label} · {reference}" in bell(app, tenant, agent)[1]
    (mail,) = outbox_to(app, tenant, agent.email)
    assert mail.subject == f"[{reference}] {subject}"
    assert mail.locale == locale
    if locale == "zh_CN":
        assert "经理复核" in mail.body and "Hello" not in mail.body
    (event,) = [e for e in notified_events(app, tenant) if e["event"] == "not_satisfied"]
    assert event["user_ids"] == [agent.id] and event["to"] == "assignee"


# --- a decision waiting for approval --------------------------------------------------------


def test_a_decision_waiting_for_approval_reaches_the_managers_who_may_approve_it(app, desk, make_user):
    tenant = desk.tenant
    admin = make_user(tenant, "admin")
    with travel(WEDNESDAY_10AM):
        big = received(app, tenant, paid="1200.00")
        proposer = staff_client(app, tenant, desk.manager)
        assert decide(proposer, tenant, big.number, **FULL, amount="1200.00").status_code == 302

        assert (
            f"A refund decision waits for approval · {big.reference}" in bell(app, tenant, desk.approver)[1]
        )
        for bystander in (desk.manager, desk.agent, admin):  # the proposer cannot approve it
            assert "No notifications." in bell(app, tenant, bystander)[1]
    (mail,) = outbox_to(app, tenant, desk.approver.email)
    assert mail.subject == f"[{big.reference}] A refund decision waits for approval"
    assert outbox_to(app, tenant, desk.manager.email) == []
    (event,) = [e for e in notified_events(app, tenant) if e["event"] == "needs_approval"]
    assert event["user_ids"] == [desk.approver.id] and event["to"] == "managers"


def test_a_decision_final_at_once_notifies_nobody(app, desk):
    with travel(WEDNESDAY_10AM):
        small = received(app, desk.tenant)
        agent = staff_client(app, desk.tenant, desk.agent)
        assert decide(agent, desk.tenant, small.number, **PARTIAL).status_code == 302
    assert [e for e in notified_events(app, desk.tenant) if e["event"] == "needs_approval"] == []


# --- the choice: in the app only -----------------------------------------------------------


def test_a_person_who_chose_the_app_only_gets_no_email_but_still_the_notification(
    app, client, make_tenant, make_user
):
    tenant = make_tenant()
    agent = make_user(tenant, "agent")
    assert login(client, tenant, agent).status_code == 302
    account = client.get(f"/t/{tenant.slug}/account")
    assert chosen(account.text) == "In the app and by email"  # the default
    saved = submit(
        client,
        f"/t/{tenant.slug}/account",
        {"notify-csrf_token": CSRF_RE.search(account.text).group(1), "notify-email_notifications": "off"},
    )
    assert saved.status_code == 302
    page = client.get(f"/t/{tenant.slug}/account").text
    assert "Your notification settings are saved." in page
    assert chosen(page) == "In the app only"

    reference, tracking = new_ticket(app, tenant, assignee=agent)
    customer_posts(app.test_client(), tracking, "reply", "Hello?")

    assert f"The customer replied · {reference}" in bell(app, tenant, agent)[1]
    assert outbox_to(app, tenant, agent.email) == []
    with acting_for(app, tenant) as session:
        (changed,) = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "user.email_notifications_changed")
        )
        assert changed.data == {"before": True, "after": False} and changed.subject_id == str(agent.id)


def test_a_bad_notification_choice_is_refused_with_a_message(client, signed_in):
    tenant, _user = signed_in("agent")
    page = client.get(f"/t/{tenant.slug}/account").text
    refused = client.post(
        f"/t/{tenant.slug}/account",
        data={"notify-csrf_token": CSRF_RE.search(page).group(1), "notify-email_notifications": "sometimes"},
    )
    assert refused.status_code == 400
    assert "Not a valid choice" in refused.text


# --- tenants apart ---------------------------------------------------------------------------


def test_notifications_never_reach_another_tenants_staff(app, client, make_tenant, make_user):
    tenant, other = make_tenant(), make_tenant()
    their_manager = make_user(other, "manager")
    their_admin = make_user(other, "admin")
    make_user(tenant, "manager")
    _reference, tracking = new_ticket(app, tenant)  # unassigned: every manager of *this* tenant

    customer_posts(client, tracking, "reply", "Hello?")
    customer_posts(client, tracking, "reply", "Anyone?")

    for user in (their_manager, their_admin):
        header, items = bell(app, other, user)
        assert "unread" not in header and "No notifications." in items
        assert outbox_to(app, other, user.email) == []
    assert notified_events(app, other) == []
    with acting_for(app, tenant) as session:  # and no user of the other tenant was named
        told = {uid for e in notified_events(app, tenant) for uid in e["user_ids"]}
        assert told and all(session.get(User, uid) is not None for uid in told)
