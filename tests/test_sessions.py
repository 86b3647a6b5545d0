"""Staff sessions on the server (issue 10, finding 5): logout ends a session for every
copy of its cookie, idle sessions end after the tenant's limit, sign-in failures are
counted per email and address and per address, ``next`` never leads off the site."""

from datetime import timedelta

import pytest
import time_machine
from flask.testing import FlaskClient
from sqlalchemy import select

from crm.audit.models import AuditEvent
from crm.columns import utcnow
from crm.provisioning import service as provisioning
from tests.conftest import PASSWORD, acting_for, login, submit

OWNER_IP = "198.51.100.7"
STRANGER_IP = "203.0.113.66"


def audit_events(app, tenant, action: str) -> list[AuditEvent]:
    with acting_for(app, tenant) as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def from_address(app, ip: str) -> FlaskClient:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = ip
    return client


def copy_cookie(source: FlaskClient, target: FlaskClient) -> None:
    cookie = source.get_cookie("session")
    target.set_cookie("session", cookie.value, domain=cookie.domain)


def is_signed_in(client: FlaskClient, tenant) -> bool:
    response = client.get(f"/t/{tenant.slug}/")
    assert response.status_code in (200, 302)
    return response.status_code == 200


def sign_out(client: FlaskClient, tenant):
    return submit(client, f"/t/{tenant.slug}/logout", {}, form_page=f"/t/{tenant.slug}/")


# --- logout -------------------------------------------------------------------------


def test_a_copied_cookie_gets_the_login_page_after_logout(app, client, make_tenant, make_user):
    tenant = make_tenant()
    user = make_user(tenant, "agent")
    assert login(client, tenant, user).status_code == 302
    thief = app.test_client()
    copy_cookie(client, thief)
    assert is_signed_in(thief, tenant)  # the copy works while the session lives

    assert sign_out(client, tenant).status_code == 302
    page = thief.get(f"/t/{tenant.slug}/tickets")
    assert page.status_code == 302
    assert page.headers["Location"].startswith(f"/t/{tenant.slug}/login")
    assert "Staff sign-in" in thief.get(page.headers["Location"]).text
    [logout] = audit_events(app, tenant, "auth.logout")
    assert logout.subject_id == str(user.id) and logout.data["session_id"]


def test_logging_out_in_one_browser_keeps_the_others_signed_in(app, make_tenant, make_user):
    tenant = make_tenant()
    user = make_user(tenant, "agent")
    office, phone = app.test_client(), app.test_client()
    login(office, tenant, user)
    login(phone, tenant, user)
    sign_out(office, tenant)
    assert not is_signed_in(office, tenant)
    assert is_signed_in(phone, tenant)


def test_a_password_change_still_ends_the_other_sessions_and_their_copies(app, make_tenant, make_user):
    tenant = make_tenant()
    user = make_user(tenant, "agent")
    here, elsewhere, copy = app.test_client(), app.test_client(), app.test_client()
    login(here, tenant, user)
    login(elsewhere, tenant, user)
    copy_cookie(elsewhere, copy)
    response = submit(
        here,
        f"/t/{tenant.slug}/account",
        {"pw-current_password": PASSWORD, "pw-new_password": "a brand new secret"},
    )
    assert response.status_code == 302
    assert is_signed_in(here, tenant)
    assert not is_signed_in(elsewhere, tenant) and not is_signed_in(copy, tenant)


# --- idle timeout ---------------------------------------------------------------------


def test_a_session_idle_past_eight_hours_is_signed_out_and_told_why(app, client, make_tenant, make_user):
    tenant = make_tenant()
    user = make_user(tenant, "agent")
    login(client, tenant, user)
    with time_machine.travel(utcnow() + timedelta(hours=7, minutes=50), tick=False) as traveller:
        assert is_signed_in(client, tenant)  # activity restarts the idle time
        traveller.shift(timedelta(hours=7, minutes=50))
        assert is_signed_in(client, tenant)
        traveller.shift(timedelta(hours=8, minutes=1))
        page = client.get(f"/t/{tenant.slug}/tickets")
        assert page.status_code == 302 and "/login" in page.headers["Location"]
        login_page = client.get(page.headers["Location"])
        assert "You were signed out after 8 hours without activity." in login_page.text
        assert not is_signed_in(client, tenant)
    [expired] = audit_events(app, tenant, "auth.session_expired")
    assert expired.subject_id == str(user.id) and expired.data["idle_minutes"] == 480
    assert login(client, tenant, user).status_code == 302  # signing in again works


def test_the_idle_message_is_in_chinese_on_a_chinese_desk(app, client, make_tenant, make_user):
    tenant = make_tenant(locale="zh_CN")
    login(client, tenant, make_user(tenant, "agent"))
    with time_machine.travel(utcnow() + timedelta(hours=8, minutes=2), tick=False):
        page = client.get(f"/t/{tenant.slug}/", follow_redirects=True)
    assert "您已连续8小时没有操作，系统已自动退出登录。请重新登录后继续。" in page.text


def test_an_admins_idle_timeout_applies_to_their_tenant_only(app, client, signed_in, make_tenant, make_user):
    strict, _admin = signed_in("admin")
    fields = {
        "ticket_prefix": "RF",
        "form_submissions_per_hour": "10",
        "agent_display": "first_name",
        "team_name": "Care",
        "country": "CN",
        "approval_threshold": "500",
        "idle_timeout_minutes": "30",
    }
    assert submit(client, f"/t/{strict.slug}/admin/settings", fields).status_code == 302
    assert 'value="30"' in client.get(f"/t/{strict.slug}/admin/settings").text
    [changed] = audit_events(app, strict, "tenant.settings_changed")
    assert changed.data["idle_timeout_minutes"] == {"before": 480, "after": 30}

    relaxed = make_tenant()
    strict_agent, relaxed_agent = app.test_client(), app.test_client()
    login(strict_agent, strict, make_user(strict, "agent"))
    login(relaxed_agent, relaxed, make_user(relaxed, "agent"))
    with time_machine.travel(utcnow() + timedelta(minutes=31), tick=False):
        page = strict_agent.get(f"/t/{strict.slug}/", follow_redirects=True)
        assert "You were signed out after 30 minutes without activity." in page.text
        assert is_signed_in(relaxed_agent, relaxed)


@pytest.mark.parametrize("value, message", [("2", "between 5 and 1440"), ("100000", "between 5 and 1440")])
def test_an_idle_timeout_out_of_range_is_refused(client, signed_in, value, message):
    tenant, _admin = signed_in("admin")
    fields = {
        "ticket_prefix": "RF",
        "form_submissions_per_hour": "10",
        "agent_display": "first_name",
        "team_name": "Care",
        "country": "CN",
        "approval_threshold": "500",
        "idle_timeout_minutes": value,
    }
    response = submit(client, f"/t/{tenant.slug}/admin/settings", fields)
    assert response.status_code == 400 and message in response.text.lower()


# --- passwords ------------------------------------------------------------------------

WEAK = [
    ("aaaaaaaaaa", "it repeats characters or words"),
    ("1234567890", "it is one of the most used passwords"),
    ("password12", "it is one of the most used passwords"),
    ("qwertyuiop", "it is one of the most used passwords"),
    ("asdfghjkl;", "it is a keyboard pattern"),
    ("abcdefghijk", "it is a sequence"),
    ("2019-08-17", "it is mostly a date or a year"),
]


@pytest.mark.parametrize("password, reason", WEAK)
def test_an_admin_cannot_give_a_new_user_a_weak_password(client, signed_in, password, reason):
    tenant, _admin = signed_in("admin")
    response = submit(
        client,
        f"/t/{tenant.slug}/admin/users",
        {"email": "newbie@example.test", "role": "agent", "password": password},
    )
    assert response.status_code == 422
    assert f"Too easy to guess: {reason}" in response.text


def test_a_password_made_of_the_persons_own_email_is_refused(client, signed_in):
    tenant, _admin = signed_in("admin")
    response = submit(
        client,
        f"/t/{tenant.slug}/admin/users",
        {"email": "wang.xiaoming@example.test", "role": "agent", "password": "wang.xiaoming"},
    )
    assert response.status_code == 422
    assert "it contains your email, your name or your organisation" in response.text


@pytest.mark.parametrize("password, reason", WEAK[:3])
def test_a_user_cannot_change_to_a_weak_password(client, signed_in, password, reason):
    tenant, user = signed_in("agent")
    response = submit(
        client, f"/t/{tenant.slug}/account", {"pw-current_password": PASSWORD, "pw-new_password": password}
    )
    assert response.status_code == 422
    assert f"Too easy to guess: {reason}" in response.text
    assert is_signed_in(client, tenant)  # nothing changed: the old password still works
    other = client.application.test_client()
    assert login(other, tenant, user).status_code == 302


def test_the_weak_password_reason_is_in_chinese_on_a_chinese_desk(client, make_tenant, make_user):
    tenant = make_tenant(locale="zh_CN")
    login(client, tenant, make_user(tenant, "admin"))
    response = submit(
        client,
        f"/t/{tenant.slug}/admin/users",
        {"email": "x@example.test", "role": "agent", "password": "password12"},
    )
    assert response.status_code == 422
    assert "密码太容易被猜到：这是最常用的密码之一。" in response.text


def test_the_users_cli_refuses_a_weak_password_with_the_reason(runner, make_tenant):
    tenant = make_tenant()
    args = ["users", "create", "--tenant", tenant.slug, "--email", "cli@example.test", "--role", "agent"]
    result = runner.invoke(args=[*args, "--password", "1234567890"])
    assert result.exit_code != 0
    assert "Too easy to guess: it is one of the most used passwords." in result.output
    assert "Traceback" not in result.output
    assert runner.invoke(args=[*args, "--password", PASSWORD]).exit_code == 0


# --- lockout per email and address, and per address ---------------------------------


def test_a_strangers_failures_lock_the_stranger_out_not_the_owner(app, make_tenant, make_user):
    tenant = make_tenant()
    owner = make_user(tenant, "manager")
    stranger = from_address(app, STRANGER_IP)
    statuses = [login(stranger, tenant, owner, password="guess-guess-1").status_code for _ in range(5)]
    assert statuses == [401, 401, 401, 401, 429]
    blocked = login(stranger, tenant, owner)  # even the right password, from the stranger's address
    assert blocked.status_code == 429
    assert "Too many failed sign-ins for this email. Try again in 15 minutes." in blocked.text
    assert 0 < int(blocked.headers["Retry-After"]) <= 15 * 60

    at_home = from_address(app, OWNER_IP)
    assert login(at_home, tenant, owner).status_code == 302
    assert is_signed_in(at_home, tenant)
    assert len(audit_events(app, tenant, "auth.locked")) == 1


@pytest.mark.parametrize("exists", [True, False])
def test_many_emails_from_one_address_are_throttled_with_retry_after(app, make_tenant, make_user, exists):
    tenant = make_tenant()
    owner = make_user(tenant, "agent")
    sprayer = from_address(app, STRANGER_IP)
    url = f"/t/{tenant.slug}/login"
    emails = [owner.email if exists and n == 7 else f"guess{n}@example.test" for n in range(20)]
    statuses = [
        submit(sprayer, url, {"email": email, "password": "not-it-at-all"}).status_code for email in emails
    ]
    assert statuses == [401] * 19 + [429]
    throttled = submit(sprayer, url, {"email": "another@example.test", "password": "not-it-at-all"})
    assert throttled.status_code == 429
    assert "Too many failed sign-ins from your network. Try again in 15 minutes." in throttled.text
    assert 14 * 60 < int(throttled.headers["Retry-After"]) <= 15 * 60
    # The right password from that address waits too: the throttle gives no hint.
    assert login(sprayer, tenant, owner).status_code == 429
    assert login(from_address(app, OWNER_IP), tenant, owner).status_code == 302
    assert len(audit_events(app, tenant, "auth.source_locked")) == 1
    with time_machine.travel(utcnow() + timedelta(minutes=16), tick=False):
        assert login(sprayer, tenant, owner).status_code == 302


def test_one_ipv6_subscriber_is_one_address(app, make_tenant, make_user):
    tenant = make_tenant()
    owner = make_user(tenant, "agent")
    url = f"/t/{tenant.slug}/login"
    statuses = [
        submit(
            from_address(app, f"2001:db8:1:2::{n:x}"), url, {"email": owner.email, "password": "nope-nope-1"}
        ).status_code
        for n in range(1, 6)
    ]
    assert statuses == [401, 401, 401, 401, 429]
    assert login(from_address(app, "2001:db8:9:9::1"), tenant, owner).status_code == 302


def test_throttles_of_one_tenant_do_not_touch_another(app, make_tenant, make_user):
    locked, calm = make_tenant(), make_tenant()
    sprayer = from_address(app, STRANGER_IP)
    for n in range(20):
        submit(
            sprayer, f"/t/{locked.slug}/login", {"email": f"g{n}@example.test", "password": "not-it-at-all"}
        )
    assert login(sprayer, calm, make_user(calm, "agent")).status_code == 302


# --- next ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "/t/{slug}/tickets\r\nSet-Cookie: hijacked=1",
        "/t/{slug}/\r\n\r\n<script>alert(1)</script>",
        "/t/{slug}/\\\\evil.example/",
        "https://evil.example/t/{slug}/",
        "//evil.example/t/{slug}/",
        "///evil.example/",
        "/\t/evil.example/",
        "javascript:alert(1)",
    ],
)
def test_a_bad_next_after_sign_in_goes_home_never_off_site(app, make_tenant, make_user, target):
    tenant = make_tenant()
    user = make_user(tenant, "agent")
    client = app.test_client()
    target = target.format(slug=tenant.slug)
    url = f"/t/{tenant.slug}/login"
    page = client.get(url, query_string={"next": target})
    assert page.status_code == 200
    response = submit(
        client, url, {"email": user.email, "password": PASSWORD}, form_page=url, query_string={"next": target}
    )
    assert response.status_code == 302
    assert response.headers["Location"] == f"/t/{tenant.slug}/"
    assert "hijacked" not in response.headers.get("Set-Cookie", "")


@pytest.mark.parametrize("control", ["\x00", "\x0b", "\x7f", "\u2028"])
def test_other_control_characters_in_next_are_no_500_and_no_redirect_off_site(
    app, make_tenant, make_user, control
):
    tenant = make_tenant()
    user = make_user(tenant, "agent")
    client = app.test_client()
    url = f"/t/{tenant.slug}/login"
    target = f"/t/{tenant.slug}/{control}//evil.example/"
    response = submit(
        client, url, {"email": user.email, "password": PASSWORD}, form_page=url, query_string={"next": target}
    )
    assert response.status_code in (302, 400)  # 400: refused before sign-in by the input guard
    if response.status_code == 302:
        assert response.headers["Location"].startswith(f"/t/{tenant.slug}/")  # this site, this desk


def test_a_good_next_is_followed(app, make_tenant, make_user):
    tenant = make_tenant()
    user = make_user(tenant, "agent")
    client = app.test_client()
    url = f"/t/{tenant.slug}/login"
    target = f"/t/{tenant.slug}/tickets?q=RF-1001"
    response = submit(client, url, {"email": user.email, "password": PASSWORD}, query_string={"next": target})
    assert response.headers["Location"] == target


def test_the_language_switch_with_a_crlf_next_stays_home(client, make_tenant):
    tenant = make_tenant()
    response = submit(
        client,
        f"/t/{tenant.slug}/language",
        {"locale": "zh_CN", "next": f"/t/{tenant.slug}/\r\nLocation: https://evil.example/"},
        form_page=f"/t/{tenant.slug}/login",
    )
    assert response.status_code == 302
    assert response.headers["Location"] == f"/t/{tenant.slug}/"


# --- accepted currencies -----------------------------------------------------------------


def settings_fields(**extra) -> dict:
    return {
        "ticket_prefix": "RF",
        "form_submissions_per_hour": "10",
        "agent_display": "first_name",
        "team_name": "Care",
        "country": "CN",
        "approval_threshold": "500",
        **extra,
    }


def test_accepted_currencies_are_the_tenants_own_then_those_its_admin_adds(
    app, client, signed_in, make_tenant
):
    tenant, _admin = signed_in("admin")
    other = make_tenant(currency="HKD")
    with acting_for(app, tenant):
        assert provisioning.accepted_currencies() == ("CNY",)
    response = submit(
        client, f"/t/{tenant.slug}/admin/settings", settings_fields(accepted_currencies="usd hkd, cny,USD")
    )
    assert response.status_code == 302
    assert 'value="USD, HKD"' in client.get(f"/t/{tenant.slug}/admin/settings").text
    with acting_for(app, tenant):
        assert provisioning.tenant_settings().accepted_currencies == "USD,HKD"
        assert provisioning.accepted_currencies() == ("CNY", "USD", "HKD")
    with acting_for(app, other):
        assert provisioning.accepted_currencies() == ("HKD",)
    [changed] = audit_events(app, tenant, "tenant.settings_changed")
    assert changed.data["accepted_currencies"] == {"before": "", "after": "USD,HKD"}


MANY_CURRENCIES = ["USD", "EUR", "GBP", "JPY", "HKD", "SGD", "AUD", "CAD", "CHF"]
MANY_CURRENCIES += ["KRW", "TWD", "MOP", "THB", "MYR", "NZD", "SEK", "NOK"]


@pytest.mark.parametrize(
    "value, message",
    [
        ("USD, ABCD", "Unknown currency ABCD"),
        ("KWD <b>", "Use ISO 4217 codes such as USD, HKD."),
        ("US$", "Use ISO 4217 codes such as USD, HKD."),
        (" ".join(MANY_CURRENCIES), "At most 16 currencies besides your own."),
        (" ".join(MANY_CURRENCIES[:16] * 2), None),
    ],
)
def test_unknown_currencies_are_refused_with_a_message(client, signed_in, value, message):
    tenant, _admin = signed_in("admin")
    response = submit(client, f"/t/{tenant.slug}/admin/settings", settings_fields(accepted_currencies=value))
    if message is None:  # repeats count once: 16 codes twice over are 16
        assert response.status_code == 302
        return
    assert response.status_code == 422
    assert message in response.text
