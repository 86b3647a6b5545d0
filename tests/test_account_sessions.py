"""Each staff user sees where they are signed in and ends the sessions they do not want
(issue 17, section 5): another browser, a lost phone, or every other one at once."""

import re

from sqlalchemy import select

from crm.audit.models import AuditEvent
from crm.auth.models import StaffSession
from tests.conftest import acting_for, login, submit

WINDOWS_CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/131.0 Safari/537.36"
)
LINUX_FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
IPHONE_SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko)"
    " Version/18.1 Mobile/15E148 Safari/604.1"
)
END_RE = re.compile(r'action="(/t/[^"]+/account/sessions/(\d+)/end)"')


def browser(app, tenant, user, agent: str, address: str):
    """A browser of its own (cookie jar, User-Agent, address), signed in as ``user``."""
    client = app.test_client()
    client.environ_base.update({"HTTP_USER_AGENT": agent, "REMOTE_ADDR": address})
    assert login(client, tenant, user).status_code == 302
    return client


def account(client, tenant):
    page = client.get(f"/t/{tenant.slug}/account")
    assert page.status_code == 200
    return page.text


def signed_in(client, tenant) -> bool:
    return client.get(f"/t/{tenant.slug}/account").status_code == 200


def test_a_user_sees_each_browser_and_signs_one_out(app, make_tenant, make_user):
    tenant = make_tenant()
    user = make_user(tenant, "agent")
    desk = browser(app, tenant, user, WINDOWS_CHROME, "203.0.113.7")
    laptop = browser(app, tenant, user, LINUX_FIREFOX, "198.51.100.23")

    page = account(desk, tenant)
    assert "Where you are signed in" in page
    assert "Chrome on Windows" in page and "Firefox on Linux" in page
    assert "203.0.113.7" in page and "198.51.100.23" in page
    assert page.count("This browser") == 1
    # One sign-out button: for the other browser, never this one.
    [(url, session_id)] = END_RE.findall(page)

    ended = submit(desk, url, {}, form_page=f"/t/{tenant.slug}/account", follow_redirects=True)
    assert "That session is signed out." in ended.text
    assert "Firefox on Linux" not in ended.text
    assert not signed_in(laptop, tenant)  # its cookie no longer works
    assert signed_in(desk, tenant)
    with acting_for(app, tenant) as session:
        [event] = session.scalars(select(AuditEvent).where(AuditEvent.action == "auth.sessions_ended")).all()
        assert event.data == {"session_ids": [int(session_id)]} and event.actor_id == str(user.id)
        assert session.get(StaffSession, int(session_id)).end_reason == "ended_by_user"


def test_sign_out_everywhere_else_keeps_only_this_browser(app, make_tenant, make_user):
    tenant = make_tenant()
    user = make_user(tenant, "manager")
    phone = browser(app, tenant, user, IPHONE_SAFARI, "203.0.113.8")
    others = [browser(app, tenant, user, agent, "203.0.113.9") for agent in (WINDOWS_CHROME, LINUX_FIREFOX)]
    assert "Safari on iOS" in account(others[0], tenant)

    done = submit(
        phone,
        f"/t/{tenant.slug}/account/sessions/end-others",
        {},
        form_page=f"/t/{tenant.slug}/account",
        follow_redirects=True,
    )
    assert "2 other sessions signed out." in done.text
    assert "Sign out all other sessions" not in done.text  # only this one is left
    assert signed_in(phone, tenant) and not any(signed_in(other, tenant) for other in others)


def test_nobody_ends_another_users_session_here_or_in_another_tenant(app, make_tenant, make_user):
    tenant, other_tenant = make_tenant(), make_tenant()
    owner = make_user(tenant, "agent")
    owners_browser = browser(app, tenant, owner, WINDOWS_CHROME, "203.0.113.10")
    with acting_for(app, tenant) as session:
        [owners_session] = session.scalars(select(StaffSession.id).where(StaffSession.user_id == owner.id))
    for intruder_tenant in (tenant, other_tenant):
        intruder = browser(
            app, intruder_tenant, make_user(intruder_tenant, "admin"), LINUX_FIREFOX, "192.0.2.1"
        )
        response = submit(
            intruder,
            f"/t/{intruder_tenant.slug}/account/sessions/{owners_session}/end",
            {},
            form_page=f"/t/{intruder_tenant.slug}/account",
            follow_redirects=True,
        )
        assert "That session had already ended." in response.text
    assert signed_in(owners_browser, tenant)


def test_a_password_change_signs_out_the_other_sessions_and_lists_only_this_one(app, make_tenant, make_user):
    tenant = make_tenant()
    user = make_user(tenant, "agent")
    here = browser(app, tenant, user, WINDOWS_CHROME, "203.0.113.11")
    elsewhere = browser(app, tenant, user, LINUX_FIREFOX, "203.0.113.12")
    changed = submit(
        here,
        f"/t/{tenant.slug}/account",
        {"pw-current_password": user.password, "pw-new_password": "a much longer new passphrase 7"},
        follow_redirects=True,
    )
    assert "Your password is changed." in changed.text
    assert "Firefox on Linux" not in changed.text and "This browser" in changed.text
    assert not signed_in(elsewhere, tenant) and signed_in(here, tenant)
    with acting_for(app, tenant) as session:
        reasons = session.scalars(
            select(StaffSession.end_reason).where(StaffSession.user_id == user.id)
        ).all()
    assert sorted(reasons, key=str) == sorted([None, "password"], key=str)
