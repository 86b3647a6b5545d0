"""The IMAP poller against a real Dovecot (Debian's dovecot-imapd, started here on a
free port with a configuration of the test's own): unread mail is delivered as the
pipe would, marked read, and a message read twice files once (issue 17, section 1)."""

from urllib.parse import quote

import pytest
from sqlalchemy import select

from crm.audit.models import AuditEvent
from crm.inbound import imap
from crm.tickets.models import EntryKind, ThreadEntry, Ticket
from tests.conftest import acting_for, submit
from tests.imap import PASSWORD, SUPPORT, mailbox_client, put, unread
from tests.mail import free_port
from tests.test_inbound_email import desk, mail


def test_the_poller_delivers_unread_mail_once_and_marks_it_read(app, runner, make_tenant, dovecot):
    tenant, ticket_id, reference, address = desk(app, make_tenant)
    url = f"imap://{quote(SUPPORT, safe='')}:{quote(PASSWORD, safe='')}@127.0.0.1:{dovecot}/INBOX"
    set_up = runner.invoke(args=["mail", "imap", "--tenant", tenant.slug, "--url", url])
    assert (
        set_up.exit_code == 0
        and set_up.output.strip() == f"mailbox: imap://{SUPPORT}@127.0.0.1:{dovecot}/INBOX"
    )
    with acting_for(app, tenant) as session:
        [event] = session.scalars(select(AuditEvent).where(AuditEvent.action == "tenant.imap_set")).all()
    assert PASSWORD not in str(event.data)  # the password is sealed, never on the record

    put(dovecot, mail(to=address, body="Here is the slip."))
    put(dovecot, mail(to=SUPPORT, body="A new question.", sender=("Zhao", "zhao@example.test")))
    put(dovecot, mail(to=address, body="Away.", Auto_Submitted="auto-replied"))
    polled = runner.invoke(args=["mail", "poll", "--tenant", tenant.slug])
    assert polled.exit_code == 0, polled.output
    assert polled.output.strip() == "fetched 3: filed 1, new 1, ignored 1, failed 0"
    assert unread(dovecot) == []
    again = runner.invoke(args=["mail", "poll", "--tenant", tenant.slug])
    assert again.output.strip() == "fetched 0: filed 0, new 0, ignored 0, failed 0"

    # Marked unread again (as if marking it read had failed after the commit): it files once.
    with mailbox_client(dovecot) as client:
        first = client.uid("SEARCH", None, "ALL")[1][0].split()[0]
        client.uid("STORE", first, "-FLAGS", "(\\Seen)")
    put(dovecot, mail(to=address, body="And one more thing."))
    with app.app_context():
        imap.poll_all()  # what the worker runs every minute, for every tenant with a mailbox
    assert unread(dovecot) == []
    with acting_for(app, tenant) as session:
        bodies = session.scalars(
            select(ThreadEntry.body).where(
                ThreadEntry.ticket_id == ticket_id, ThreadEntry.kind == EntryKind.INBOUND_MESSAGE
            )
        ).all()
        tickets = session.scalars(select(Ticket.reference).order_by(Ticket.number)).all()
    assert bodies[1:] == ["Here is the slip.", "And one more thing."]
    assert tickets == [reference, "RF-1002"]


def test_a_mailbox_that_cannot_be_read_says_so(app, runner, make_tenant):
    tenant, *_ = desk(app, make_tenant)
    no_box = runner.invoke(args=["mail", "poll", "--tenant", tenant.slug])
    assert no_box.exit_code != 0 and "No IMAP mailbox is set" in no_box.output
    bad = runner.invoke(args=["mail", "imap", "--tenant", tenant.slug, "--url", "https://x.example/"])
    assert bad.exit_code != 0 and "imaps://user:password@host/INBOX" in bad.output
    closed = f"imap://u:p@127.0.0.1:{free_port()}/INBOX"
    assert runner.invoke(args=["mail", "imap", "--tenant", tenant.slug, "--url", closed]).exit_code == 0
    refused = runner.invoke(args=["mail", "poll", "--tenant", tenant.slug])
    assert refused.exit_code != 0 and "could not read the mailbox" in refused.output


def test_an_admin_sets_the_mailbox_on_its_page_checked_by_signing_in(app, client, signed_in, dovecot):
    tenant, _admin = signed_in("admin")
    page = f"/t/{tenant.slug}/admin/mailbox"
    fields = {
        "security": "imap",
        "host": "127.0.0.1",
        "port": str(dovecot),
        "user": SUPPORT,
        "folder": "INBOX",
    }
    # Private addresses and passwords in the clear are refused unless the operator allows them.
    refused = submit(client, page, {**fields, "password": PASSWORD}, form_page=page)
    assert refused.status_code == 422 and "private or local address" in refused.text
    app.config["WEBHOOKS_ALLOW_PRIVATE"] = True  # the test's Dovecot is on loopback
    try:
        wrong = submit(client, page, {**fields, "password": "wrong"}, form_page=page)
        assert wrong.status_code == 422 and "could not open this mailbox" in wrong.text
        assert "No mailbox: the desk reads none." in wrong.text  # nothing kept
        missing = submit(client, page, {**fields, "password": ""}, form_page=page)
        assert missing.status_code == 422 and "Enter the mailbox" in missing.text
        saved = submit(client, page, {**fields, "password": PASSWORD}, form_page=page, follow_redirects=True)
        assert "Mailbox saved" in saved.text and f"imap://{SUPPORT}@127.0.0.1:{dovecot}/INBOX" in saved.text
        assert PASSWORD not in saved.text
        # Saved again without the password: the saved one is kept.
        again = submit(client, page, {**fields, "password": ""}, form_page=page, follow_redirects=True)
        assert "Mailbox saved" in again.text

        put(dovecot, mail(to=SUPPORT, body="A question by mail.", sender=("Zhao", "zhao@example.test")))
        fetched = submit(client, f"{page}/fetch", {}, form_page=page, follow_redirects=True)
        assert "Fetched 1: 0 filed on their tickets, 1 new tickets, 0 ignored, 0 failed" in fetched.text
        stopped = submit(client, f"{page}/stop", {}, form_page=page, follow_redirects=True)
        assert "No mailbox: the desk reads none." in stopped.text
    finally:
        app.config.pop("WEBHOOKS_ALLOW_PRIVATE")
    with acting_for(app, tenant) as session:
        events = session.scalars(select(AuditEvent).where(AuditEvent.action == "tenant.imap_set")).all()
        assert [event.data["mailbox"] is None for event in events] == [False, False, True]


def test_a_mailbox_set_on_the_page_is_checked_again_at_every_poll(app, client, runner, signed_in, dovecot):
    """A name can be made to resolve to a private address after it was checked, to reach
    our own network through the poller: it checks the server again. Here the operator's
    allowance, under which the admin saved the test's loopback Dovecot, is withdrawn
    before the poll: the server is private by then."""
    tenant, _admin = signed_in("admin")
    page = f"/t/{tenant.slug}/admin/mailbox"
    fields = {"security": "imap", "host": "127.0.0.1", "port": str(dovecot), "user": SUPPORT}
    app.config["WEBHOOKS_ALLOW_PRIVATE"] = True
    try:
        saved = submit(
            client,
            page,
            {**fields, "folder": "INBOX", "password": PASSWORD},
            form_page=page,
            follow_redirects=True,
        )
        assert "Mailbox saved" in saved.text
    finally:
        app.config.pop("WEBHOOKS_ALLOW_PRIVATE")
    put(dovecot, mail(to=SUPPORT, body="A question by mail.", sender=("Zhao", "zhao@example.test")))
    polled = runner.invoke(args=["mail", "poll", "--tenant", tenant.slug])
    assert polled.exit_code != 0 and "private or local address" in polled.output
    fetched = submit(client, f"{page}/fetch", {}, form_page=page, follow_redirects=True)
    assert "private or local address" in fetched.text
    assert len(unread(dovecot)) == 1  # not fetched, not marked read


def test_only_admins_reach_the_mailbox_page(client, signed_in):
    tenant, _manager = signed_in("manager")
    assert client.get(f"/t/{tenant.slug}/admin/mailbox").status_code in (403, 404)


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"host": "", "user": "u", "password": "p"}, 400),
        ({"host": "x" * 300, "user": "u", "password": "p"}, 400),
        ({"host": "imap.example.test", "port": "imap", "user": "u", "password": "p"}, 400),
        ({"host": "imap.example.test", "port": "70000", "user": "u", "password": "p"}, 400),
        ({"host": "imap.example.test", "user": "u" * 300, "password": "p"}, 400),
        ({"host": "imap.example.test", "user": "u", "password": "p", "security": "pop3"}, 400),
        ({"host": "imap.example.test", "user": "u", "password": "p", "folder": ""}, 400),
        ({"host": "bad host name!", "user": "u", "password": "p"}, 400),
        ({"host": "u@127.0.0.1", "user": "u", "password": "p"}, 400),
        ({"host": "no-such-host.invalid", "user": "u", "password": "p"}, 422),
        ({"host": "imap.example.test", "user": "u", "password": ""}, 422),
        ({"host": "imap.example.test", "user": "u\x00", "password": "p"}, 400),
    ],
)
def test_bad_mailbox_settings_are_refused_and_nothing_is_kept(app, client, signed_in, fields, status):
    tenant, _admin = signed_in("admin")
    page = f"/t/{tenant.slug}/admin/mailbox"
    response = submit(client, page, {"security": "imaps", "folder": "INBOX", **fields}, form_page=page)
    assert response.status_code == status
    assert "No mailbox: the desk reads none." in client.get(page).text
