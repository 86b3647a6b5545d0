"""Forgotten passwords (issue 17, section 5): a single-use, short-lived link by email,
asked for on the sign-in page or sent by an admin; neither tells anyone whether an
address has an account. Mail goes to a real SMTP server on loopback."""

import re
from datetime import timedelta
from urllib.parse import urlsplit

import time_machine
from sqlalchemy import select

from crm.audit.models import AuditEvent
from crm.auth.models import PasswordReset
from crm.auth.resets import PER_ACCOUNT_PER_HOUR, RESET_MINUTES
from crm.columns import utcnow
from tests.conftest import acting_for, login, submit
from tests.test_email import outbox_rows, staff_client
from tests.test_leads import send_trial, trial_fields

RESET_LINK_RE = re.compile(r"https?://\S+/reset-password/[A-Za-z0-9_-]+")
NEW_PASSWORD = "river kettle orchard 42"


def ask(client, tenant, email: str):
    return submit(client, f"/t/{tenant.slug}/login/forgot", {"email": email})


def links_in(mailbox, address: str) -> list[str]:
    return [
        path
        for message, recipients in zip(mailbox.messages, mailbox.recipients, strict=True)
        if recipients == [address]
        for path in (urlsplit(link).path for link in RESET_LINK_RE.findall(message.get_content()))
    ]


def choose(client, path: str, password: str, confirm: str | None = None):
    return submit(client, path, {"new_password": password, "confirm": confirm or password})


def test_a_forgotten_password_is_reset_with_the_emailed_link_once(
    make_app, smtp_url, smtp_server, make_tenant, make_user
):
    desk = make_app(smtp_url=smtp_url)
    tenant = make_tenant()
    user = make_user(tenant, "agent")
    elsewhere = desk.test_client()
    assert login(elsewhere, tenant, user).status_code == 302
    client = desk.test_client()
    assert "Forgot your password?" in client.get(f"/t/{tenant.slug}/login").text

    asked = ask(client, tenant, user.email.upper())  # as typed, in capitals
    assert asked.status_code == 200
    assert "a link to choose a new password is on its way there" in asked.text
    [path] = links_in(smtp_server, user.email)
    [row] = [row for row in outbox_rows(desk, tenant) if row.to_address == user.email]
    assert path.rsplit("/", 1)[1] not in row.body and "[password-reset-link]" in row.body  # never stored
    assert f"works once, for {RESET_MINUTES} minutes" in smtp_server.messages[-1].get_content()

    other = make_tenant()
    assert client.get(path.replace(f"/t/{tenant.slug}/", f"/t/{other.slug}/")).status_code == 404
    page = client.get(path)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert choose(client, path, NEW_PASSWORD, "something else entirely 9").status_code == 400
    weak = choose(client, path, "password123")
    assert weak.status_code == 422 and "password" in weak.text.lower()
    done = choose(client, path, NEW_PASSWORD)
    assert done.status_code == 302 and done.location.endswith(f"/t/{tenant.slug}/login")

    assert login(desk.test_client(), tenant, user).status_code == 401  # the old password is gone
    assert login(desk.test_client(), tenant, user, NEW_PASSWORD).status_code == 302
    assert elsewhere.get(f"/t/{tenant.slug}/account").status_code == 302  # signed out everywhere
    spent = client.get(path)
    assert spent.status_code == 404 and "does not work any more" in spent.text
    assert choose(client, path, "another long passphrase 77").status_code == 404
    with acting_for(desk, tenant) as session:
        actions = session.scalars(
            select(AuditEvent.action).where(AuditEvent.subject_id == str(user.id))
        ).all()
    assert "auth.password_reset_sent" in actions and "user.password_reset" in actions


def test_the_answer_is_the_same_for_an_unknown_or_inactive_address_and_nothing_is_sent(
    make_app, smtp_url, smtp_server, make_tenant, make_user
):
    desk = make_app(smtp_url=smtp_url)
    tenant, other = make_tenant(), make_tenant()
    known = make_user(tenant, "agent")
    of_other_tenant = make_user(other, "admin")
    client = desk.test_client()

    def answer(email: str) -> str:
        response = ask(client, tenant, email)
        assert response.status_code == 200
        return re.sub(r'value="[^"]*"', "", response.text.replace(email, "EMAIL"))

    assert answer("nobody@example.test") == answer(known.email) == answer(of_other_tenant.email)
    assert links_in(smtp_server, "nobody@example.test") == links_in(smtp_server, of_other_tenant.email) == []
    assert len(links_in(smtp_server, known.email)) == 1
    with acting_for(desk, tenant) as session:
        refused = session.scalars(
            select(AuditEvent.data).where(AuditEvent.action == "auth.password_reset_refused")
        ).all()
    assert sorted(data["reason"] for data in refused) == ["no_account", "no_account"]


def test_an_account_gets_a_few_links_an_hour_and_each_works_for_minutes(
    make_app, smtp_url, smtp_server, make_tenant, make_user
):
    desk = make_app(smtp_url=smtp_url)
    tenant = make_tenant()
    user = make_user(tenant, "manager")
    client = desk.test_client()
    for _ in range(PER_ACCOUNT_PER_HOUR + 2):
        assert ask(client, tenant, user.email).status_code == 200
    links = links_in(smtp_server, user.email)
    assert len(links) == PER_ACCOUNT_PER_HOUR

    with time_machine.travel(utcnow() + timedelta(minutes=RESET_MINUTES + 1)):
        assert client.get(links[0]).status_code == 404  # too old
    # Using one link spends the others too.
    assert choose(client, links[-1], NEW_PASSWORD).status_code == 302
    assert all(client.get(link).status_code == 404 for link in links)


def test_an_admin_sends_a_link_and_others_cannot(make_app, smtp_url, smtp_server, make_tenant, make_user):
    desk = make_app(smtp_url=smtp_url)
    tenant, other = make_tenant(), make_tenant()
    user = make_user(tenant, "auditor")
    url = f"/t/{tenant.slug}/admin/users/{user.id}/send-reset"
    admin = staff_client(desk, tenant, make_user, "admin")
    page = admin.get(f"/t/{tenant.slug}/admin/users/{user.id}")
    assert "Send a link to choose a new password" in page.text
    sent = submit(admin, url, {}, form_page=f"/t/{tenant.slug}/admin/users/{user.id}", follow_redirects=True)
    assert f"on its way to {user.email}" in sent.text
    [path] = links_in(smtp_server, user.email)
    assert "An admin of" in smtp_server.messages[-1].get_content()
    assert choose(desk.test_client(), path, NEW_PASSWORD).status_code == 302

    manager = staff_client(desk, tenant, make_user, "manager")
    assert submit(manager, url, {}, form_page=f"/t/{tenant.slug}/account").status_code == 403
    other_admin = staff_client(desk, other, make_user, "admin")
    across = submit(
        other_admin,
        f"/t/{other.slug}/admin/users/{user.id}/send-reset",
        {},
        form_page=f"/t/{other.slug}/account",
    )
    assert across.status_code == 404
    with acting_for(desk, tenant) as session:
        assert len(session.scalars(select(PasswordReset).where(PasswordReset.user_id == user.id)).all()) == 1


def test_a_name_that_reads_like_the_reset_slot_is_mailed_as_written(
    make_app, smtp_url, smtp_server, make_tenant
):
    """An anonymous trial request named like the reset link's slot: its receipt goes out
    with the name as typed; no link is minted and the outbox is not stuck."""
    desk = make_app(smtp_url=smtp_url)
    tenant = make_tenant()
    client = desk.test_client()
    fields = trial_fields(name="[password-reset-link]", email="slot@example.test")
    assert send_trial(client, tenant.slug, fields).status_code == 302
    [receipt] = [m for m in smtp_server.messages if m["To"] == "slot@example.test"]
    assert "[password-reset-link]" in receipt.get_content()
    assert [row.status for row in outbox_rows(desk, tenant)] == ["sent"]
