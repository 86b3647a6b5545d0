"""Two-step sign-in (issue 17, section 5): a code from an authenticator app after the
password (RFC 6238, computed here with pyotp as a phone would), recovery codes, the
throttles, and each tenant's requirement for managers and admins."""

import html
import re
from datetime import timedelta

import pyotp
import time_machine
from sqlalchemy import select, update

from crm.audit.models import AuditEvent
from crm.columns import utcnow
from crm.provisioning.models import TenantSettings
from tests.conftest import acting_for, login, submit

KEY_RE = re.compile(r'<code class="mono user-select-all d-inline-block">([A-Z2-7 ]+)</code>')
CODE_RE = re.compile(r"<li>([0-9a-f]{6}-[0-9a-f]{6})</li>")


def set_up(client, tenant) -> tuple[pyotp.TOTP, list[str]]:
    """Turn two-step sign-in on from the account page, as the user would with a phone."""
    page = client.get(f"/t/{tenant.slug}/account/two-factor")
    assert page.status_code == 200 and "<svg" in page.text
    totp = pyotp.TOTP(KEY_RE.search(page.text).group(1).replace(" ", ""))
    done = submit(client, f"/t/{tenant.slug}/account/two-factor", {"action": "on", "setup-code": totp.now()})
    assert done.status_code == 200 and "Two-step sign-in is on." in done.text
    codes = CODE_RE.findall(done.text)
    assert len(codes) == 10
    return totp, codes


def enter(client, tenant, code: str):
    return submit(client, f"/t/{tenant.slug}/login/code", {"code": code})


def next_step(moment=None):
    """A time 30 s on, when the app shows a new code."""
    return time_machine.travel((moment or utcnow()) + timedelta(seconds=31), tick=False)


def actions(app, tenant) -> list[str]:
    with acting_for(app, tenant) as session:
        return list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)))


def test_set_up_then_every_sign_in_asks_for_a_code_that_works_once(app, client, make_tenant, make_user):
    tenant = make_tenant()
    user = make_user(tenant, "agent")
    assert login(client, tenant, user).status_code == 302
    wrong = submit(client, f"/t/{tenant.slug}/account/two-factor", {"action": "on", "setup-code": "000000"})
    assert wrong.status_code == 422 and "That code is not right." in wrong.text
    totp, _codes = set_up(client, tenant)
    assert "user.two_factor_enabled" in actions(app, tenant)

    with next_step():
        browser = app.test_client()
        password_ok = login(browser, tenant, user)
        assert password_ok.status_code == 302 and password_ok.location.endswith("/login/code")
        assert browser.get(f"/t/{tenant.slug}/").status_code == 302  # not signed in yet
        refused = enter(browser, tenant, "123456")
        assert refused.status_code == 401 and "That code is not right." in refused.text
        superscripts = enter(browser, tenant, "²²²²²²")  # digits to str.isdigit, not to a code
        assert superscripts.status_code == 401 and "That code is not right." in superscripts.text
        code = totp.now()
        assert enter(browser, tenant, code).status_code == 302
        assert browser.get(f"/t/{tenant.slug}/").status_code == 200
        # The same code, seen over a shoulder, does not sign in a second browser.
        other = app.test_client()
        assert login(other, tenant, user).status_code == 302
        assert enter(other, tenant, code).status_code == 401
    with acting_for(app, tenant) as session:
        [signed] = session.scalars(
            select(AuditEvent.data)
            .where(AuditEvent.action == "auth.login")
            .order_by(AuditEvent.seq.desc())
            .limit(1)
        ).all()
    assert signed["second_step"] == "app"
    assert {"auth.password_accepted", "auth.second_step_failed"} <= set(actions(app, tenant))


def test_a_recovery_code_works_once_and_new_ones_replace_the_old(app, client, make_tenant, make_user):
    tenant = make_tenant()
    user = make_user(tenant, "manager")
    assert login(client, tenant, user).status_code == 302
    _totp, codes = set_up(client, tenant)

    browser = app.test_client()
    assert login(browser, tenant, user).status_code == 302
    used = enter(browser, tenant, codes[0].upper().replace("-", " "))  # as typed from paper
    assert used.status_code == 302
    assert "You used a recovery code: 9 are left." in html.unescape(browser.get(used.location).text)
    again = app.test_client()
    assert login(again, tenant, user).status_code == 302
    assert enter(again, tenant, codes[0]).status_code == 401

    renewed = submit(client, f"/t/{tenant.slug}/account/two-factor", {"action": "codes"})
    new_codes = CODE_RE.findall(renewed.text)
    assert len(new_codes) == 10 and not set(new_codes) & set(codes)
    assert enter(again, tenant, codes[1]).status_code == 401  # the old ones stopped
    assert enter(again, tenant, new_codes[0]).status_code == 302


def test_wrong_codes_pause_sign_in_and_a_password_does_not_reset_the_count(app, make_tenant, make_user):
    tenant = make_tenant()
    user = make_user(tenant, "agent")
    owner = app.test_client()
    assert login(owner, tenant, user).status_code == 302
    set_up(owner, tenant)

    guesser = app.test_client()
    guesser.environ_base["REMOTE_ADDR"] = "203.0.113.50"
    assert login(guesser, tenant, user).status_code == 302
    for guess in ("111111", "222222", "333333", "444444"):
        assert enter(guesser, tenant, guess).status_code == 401
    assert login(guesser, tenant, user).status_code == 302  # the password again, then one more guess
    paused = enter(guesser, tenant, "555555")
    assert paused.status_code == 429 and paused.headers["Retry-After"]
    assert "auth.locked" in actions(app, tenant)


def test_the_code_is_asked_for_within_five_minutes_of_the_password(app, make_tenant, make_user):
    tenant = make_tenant()
    user = make_user(tenant, "agent")
    client = app.test_client()
    assert login(client, tenant, user).status_code == 302
    totp, _ = set_up(client, tenant)
    browser = app.test_client()
    assert login(browser, tenant, user).status_code == 302
    with time_machine.travel(utcnow() + timedelta(minutes=6), tick=False):
        late = browser.get(f"/t/{tenant.slug}/login/code")
        assert late.status_code == 302 and late.location.endswith("/login")
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', browser.get(late.location).text)
        posted = browser.post(
            f"/t/{tenant.slug}/login/code", data={"csrf_token": token.group(1), "code": totp.now()}
        )
        assert posted.status_code == 302 and posted.location.endswith("/login")
        assert browser.get(f"/t/{tenant.slug}/").status_code == 302  # still not signed in


def test_a_tenant_requires_it_of_managers_and_admins_who_set_it_up_first(app, make_tenant, make_user):
    tenant = make_tenant()
    with acting_for(app, tenant) as session:
        session.execute(update(TenantSettings).values(require_two_factor=True))
        session.commit()
    agent, manager = make_user(tenant, "agent"), make_user(tenant, "manager")
    agents_browser, managers_browser = app.test_client(), app.test_client()
    assert login(agents_browser, tenant, agent).status_code == 302
    assert agents_browser.get(f"/t/{tenant.slug}/tickets").status_code == 200  # agents are not asked

    assert login(managers_browser, tenant, manager).status_code == 302
    for page in ("/", "/tickets", "/reports/sla", "/account"):
        held = managers_browser.get(f"/t/{tenant.slug}{page}")
        assert held.status_code == 302 and held.location.endswith("/account/two-factor"), page
    set_up(managers_browser, tenant)
    assert managers_browser.get(f"/t/{tenant.slug}/tickets").status_code == 200
    page = managers_browser.get(f"/t/{tenant.slug}/account/two-factor")
    assert "requires two-step sign-in for your role, so it stays on" in page.text
    off = submit(
        managers_browser,
        f"/t/{tenant.slug}/account/two-factor",
        {"action": "off", "off-password": manager.password},
    )
    assert off.status_code == 422 and "requires two-step sign-in for your role" in html.unescape(off.text)


def test_the_user_turns_it_off_with_their_password_and_an_admin_for_a_lost_phone(app, make_tenant, make_user):
    tenant, other = make_tenant(), make_tenant()
    user = make_user(tenant, "agent")
    client = app.test_client()
    assert login(client, tenant, user).status_code == 302
    set_up(client, tenant)
    url = f"/t/{tenant.slug}/account/two-factor"
    assert submit(client, url, {"action": "off", "off-password": "not my password"}).status_code == 403
    assert submit(client, url, {"action": "off", "off-password": user.password}).status_code == 302
    assert login(app.test_client(), tenant, user).location.endswith(f"/t/{tenant.slug}/")  # no code now

    set_up(client, tenant)
    admin = app.test_client()
    assert login(admin, tenant, make_user(tenant, "admin")).status_code == 302
    user_page = f"/t/{tenant.slug}/admin/users/{user.id}"
    assert "Turn off two-step sign-in" in admin.get(user_page).text
    other_admin = app.test_client()
    assert login(other_admin, other, make_user(other, "admin")).status_code == 302
    across = submit(
        other_admin,
        f"/t/{other.slug}/admin/users/{user.id}/two-factor/off",
        {},
        form_page=f"/t/{other.slug}/",
    )
    assert across.status_code == 404
    done = submit(admin, f"{user_page}/two-factor/off", {}, form_page=user_page, follow_redirects=True)
    assert f"Two-step sign-in is off for {user.email}" in done.text
    assert login(app.test_client(), tenant, user).location.endswith(f"/t/{tenant.slug}/")
    with acting_for(app, tenant) as session:
        data = session.scalars(
            select(AuditEvent.data).where(AuditEvent.action == "user.two_factor_disabled")
        ).all()
    assert [d["by_admin"] for d in data] == [False, True]
