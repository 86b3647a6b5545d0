"""Staff sign-in, lockout, sessions, roles and the admin's user pages."""

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from crm.auth import service as auth
from crm.auth.models import LoginThrottle, User
from crm.columns import utcnow
from tests.conftest import PASSWORD, acting_for, login, requires_postgres, submit


def audit_actions(app, tenant) -> list[str]:
    from crm.audit.models import AuditEvent

    with acting_for(app, tenant) as session:
        return list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)))


def test_signing_in_shows_the_desk_and_is_audited(app, client, make_tenant, make_user):
    tenant = make_tenant()
    admin = make_user(tenant, "admin")
    response = login(client, tenant, admin)
    assert response.status_code == 302
    assert response.headers["Location"] == f"/t/{tenant.slug}/"
    home = client.get(f"/t/{tenant.slug}/")
    assert home.status_code == 200
    assert tenant.name in home.text
    audit_page = client.get(f"/t/{tenant.slug}/audit")
    assert "auth.login" in audit_page.text
    assert admin.email in audit_page.text


def test_wrong_password_and_unknown_email_get_the_same_answer(app, client, make_tenant, make_user):
    tenant = make_tenant()
    user = make_user(tenant)
    wrong_password = login(client, tenant, user, password="not the password")
    unknown = submit(
        client, f"/t/{tenant.slug}/login", {"email": "ghost@example.test", "password": "whatever12"}
    )
    assert wrong_password.status_code == unknown.status_code == 401
    message = "The email or password is not correct."
    assert message in wrong_password.text and message in unknown.text
    assert "ghost@example.test" in unknown.text  # what the person typed is kept
    assert audit_actions(app, tenant)[-2:] == ["auth.login_failed", "auth.login_failed"]


def test_empty_and_oversized_login_fields_are_a_400_with_messages(client, make_tenant):
    tenant = make_tenant()
    empty = submit(client, f"/t/{tenant.slug}/login", {"email": "", "password": ""})
    assert empty.status_code == 400
    assert "Enter your email." in empty.text and "Enter your password." in empty.text
    huge = submit(
        client, f"/t/{tenant.slug}/login", {"email": "a" * 5000 + "@x.test", "password": "p" * 5000}
    )
    assert huge.status_code == 400


@pytest.mark.parametrize("account_exists", [True, False])
def test_five_failures_lock_the_email_for_fifteen_minutes(
    app, client, make_tenant, make_user, account_exists
):
    tenant = make_tenant()
    user = make_user(tenant)
    email = user.email if account_exists else "nobody@example.test"
    url = f"/t/{tenant.slug}/login"
    statuses = [
        submit(client, url, {"email": email, "password": "wrong-password"}).status_code for _ in range(5)
    ]
    assert statuses == [401, 401, 401, 401, 429]
    locked = submit(client, url, {"email": email, "password": PASSWORD})
    assert locked.status_code == 429
    assert "Try again in 15 minutes" in locked.text
    actions = audit_actions(app, tenant)
    assert actions.count("auth.login_failed") == 5
    assert actions.count("auth.locked") == 1
    assert actions[-1] == "auth.login_refused"

    if account_exists:  # once the lock has run out, the right password works again
        with acting_for(app, tenant) as session:
            session.execute(update(LoginThrottle).values(locked_until=utcnow() - timedelta(seconds=1)))
            session.commit()
        assert login(client, tenant, user).status_code == 302


def test_logout_ends_the_session_and_is_audited(app, client, signed_in):
    tenant, _user = signed_in("agent")
    assert client.get(f"/t/{tenant.slug}/").status_code == 200
    response = submit(client, f"/t/{tenant.slug}/logout", {}, form_page=f"/t/{tenant.slug}/")
    assert response.status_code == 302
    page = client.get(f"/t/{tenant.slug}/")
    assert page.status_code == 302 and "/login" in page.headers["Location"]
    assert audit_actions(app, tenant)[-1] == "auth.logout"


def test_changing_password_ends_other_sessions_but_not_this_one(app, make_tenant, make_user):
    tenant = make_tenant()
    user = make_user(tenant, "agent")
    here, elsewhere = app.test_client(), app.test_client()
    login(here, tenant, user)
    login(elsewhere, tenant, user)
    response = submit(
        here,
        f"/t/{tenant.slug}/account",
        {"pw-current_password": PASSWORD, "pw-new_password": "a brand new secret"},
    )
    assert response.status_code == 302
    assert here.get(f"/t/{tenant.slug}/").status_code == 200
    assert elsewhere.get(f"/t/{tenant.slug}/").status_code == 302
    assert login(elsewhere, tenant, user, password="a brand new secret").status_code == 302
    assert "user.password_changed" in audit_actions(app, tenant)


def test_wrong_current_password_is_refused_with_a_message(client, signed_in):
    tenant, _user = signed_in("agent")
    response = submit(
        client,
        f"/t/{tenant.slug}/account",
        {"pw-current_password": "nope-nope-nope", "pw-new_password": "x" * 12},
    )
    assert response.status_code == 422
    assert "The current password is not correct." in response.text


def test_deactivating_a_user_ends_their_sessions(app, client, signed_in, make_user):
    tenant, _admin = signed_in("admin")
    agent = make_user(tenant, "agent")
    agent_client = app.test_client()
    login(agent_client, tenant, agent)
    response = submit(
        client, f"/t/{tenant.slug}/admin/users/{agent.id}", {"role": "agent"}
    )  # active unchecked
    assert response.status_code == 302
    assert agent_client.get(f"/t/{tenant.slug}/").status_code == 302
    assert login(agent_client, tenant, agent).status_code == 401
    assert "user.deactivated" in audit_actions(app, tenant)


@pytest.mark.parametrize(
    "path, data",
    [
        ("login", {"email": "a@b.test", "password": "whatever"}),
        ("logout", {}),
        ("admin/users", {"email": "x@y.test"}),
    ],
)
def test_posts_without_csrf_token_are_refused(client, signed_in, path, data):
    tenant, _admin = signed_in("admin")
    response = client.post(f"/t/{tenant.slug}/{path}", data=data)
    assert response.status_code == 400
    assert "Reload the page" in response.text
    assert client.get(f"/t/{tenant.slug}/").status_code == 200  # still signed in


def test_session_cookie_is_httponly_and_samesite_lax(client, make_tenant, make_user):
    tenant = make_tenant()
    response = login(client, tenant, make_user(tenant))
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


@pytest.mark.parametrize(
    "role, path, status",
    [
        ("agent", "audit", 403),
        ("agent", "admin/users", 403),
        ("manager", "audit", 200),
        ("manager", "admin/users", 403),
        ("auditor", "audit", 200),
        ("auditor", "admin/users", 403),
        ("admin", "admin/users", 200),
    ],
)
def test_pages_check_the_role(client, signed_in, role, path, status):
    tenant, _user = signed_in(role)
    assert client.get(f"/t/{tenant.slug}/{path}").status_code == status


def test_an_auditors_reading_is_itself_audited(app, client, signed_in):
    tenant, _auditor = signed_in("auditor")
    client.get(f"/t/{tenant.slug}/audit?action=auth.")
    assert audit_actions(app, tenant)[-1] == "audit.viewed"


def test_auditor_access_ends_when_it_expires(app, client, make_tenant, make_user):
    tenant = make_tenant()
    auditor = make_user(tenant, "auditor")
    assert login(client, tenant, auditor).status_code == 302
    with acting_for(app, tenant) as session:
        session.execute(update(User).values(access_expires_at=utcnow() - timedelta(minutes=1)))
        session.commit()
    assert client.get(f"/t/{tenant.slug}/audit").status_code == 302


def test_admin_adds_a_user_who_can_then_sign_in(app, client, signed_in):
    tenant, _admin = signed_in("admin")
    response = submit(
        client,
        f"/t/{tenant.slug}/admin/users",
        {
            "email": "New.Person@Example.test",
            "display_name": "New Person",
            "role": "manager",
            "password": "long enough pw",
        },
    )
    assert response.status_code == 302
    listing = client.get(f"/t/{tenant.slug}/admin/users")
    assert "new.person@example.test" in listing.text
    newcomer = app.test_client()
    response = submit(
        newcomer,
        f"/t/{tenant.slug}/login",
        {"email": "new.person@example.test", "password": "long enough pw"},
    )
    assert response.status_code == 302
    assert "user.created" in audit_actions(app, tenant)


@pytest.mark.parametrize(
    "data, status, message",
    [
        ({"email": "", "role": "agent", "password": "long enough pw"}, 400, "This field is required."),
        (
            {"email": "not-an-email", "role": "agent", "password": "long enough pw"},
            422,
            "Enter a valid email",
        ),
        ({"email": "a@b.test", "role": "emperor", "password": "long enough pw"}, 400, "Not a valid choice."),
        ({"email": "a@b.test", "role": "agent", "password": "short"}, 400, "Use 10 to 128 characters."),
        (
            {"email": "a@b.test", "role": "agent", "password": "p", "display_name": "n" * 300},
            400,
            "200 characters",
        ),
    ],
)
def test_bad_new_user_input_is_a_400_that_keeps_what_was_typed(client, signed_in, data, status, message):
    tenant, _admin = signed_in("admin")
    response = submit(client, f"/t/{tenant.slug}/admin/users", data)
    assert response.status_code == status
    assert message in response.text
    if data["email"]:
        assert data["email"] in response.text


def test_duplicate_email_is_refused_within_a_tenant_but_fine_in_another(
    client, signed_in, make_tenant, make_user
):
    tenant, admin = signed_in("admin")
    response = submit(
        client,
        f"/t/{tenant.slug}/admin/users",
        {"email": admin.email, "role": "agent", "password": "long enough pw"},
    )
    assert response.status_code == 409
    assert "A user with this email already exists." in response.text
    other = make_tenant()
    assert make_user(other, "agent", email=admin.email).email == admin.email


def test_admin_cannot_demote_or_deactivate_themselves(client, signed_in):
    tenant, admin = signed_in("admin")
    response = submit(client, f"/t/{tenant.slug}/admin/users/{admin.id}", {"role": "agent", "active": "y"})
    assert response.status_code == 422
    assert "You cannot change your own role" in response.text
    assert client.get(f"/t/{tenant.slug}/admin/users").status_code == 200


def test_changing_a_role_is_audited_with_before_and_after(app, client, signed_in, make_user):
    from crm.audit.models import AuditEvent

    tenant, _admin = signed_in("admin")
    agent = make_user(tenant, "agent")
    submit(client, f"/t/{tenant.slug}/admin/users/{agent.id}", {"role": "manager", "active": "y"})
    with acting_for(app, tenant) as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "user.changed")).one()
        assert event.data == {"role": {"before": "agent", "after": "manager"}}
        assert event.subject_id == str(agent.id)


def test_users_cli_creates_and_refuses_bad_input(app, runner, make_tenant):
    tenant = make_tenant()
    base = ["users", "create", "--tenant", tenant.slug, "--password", "long enough pw"]
    ok = runner.invoke(args=[*base, "--email", "cli@example.test", "--role", "manager"])
    assert ok.exit_code == 0, ok.output
    assert "created manager cli@example.test" in ok.output
    for extra, message in [
        (["--email", "cli@example.test", "--role", "agent"], "already exists"),
        (["--email", "bad", "--role", "agent"], "valid email"),
        (["--email", "x@example.test", "--role", "emperor"], "Invalid value for '--role'"),
    ]:
        result = runner.invoke(args=[*base, *extra])
        assert result.exit_code != 0
        assert message in result.output
        assert "Traceback" not in result.output
    unknown = runner.invoke(
        args=[
            "users",
            "create",
            "--tenant",
            "nope",
            "--email",
            "a@b.test",
            "--role",
            "agent",
            "--password",
            "x" * 12,
        ]
    )
    assert unknown.exit_code != 0 and "no tenant has the slug" in unknown.output


def test_users_cli_prompts_for_the_password(runner, make_tenant):
    tenant = make_tenant()
    result = runner.invoke(
        args=["users", "create", "--tenant", tenant.slug, "--email", "p@example.test", "--role", "agent"],
        input="long enough pw\nlong enough pw\n",
    )
    assert result.exit_code == 0, result.output


@requires_postgres
def test_parallel_guesses_at_one_email_are_all_counted(app, make_tenant, make_user):
    tenant = make_tenant()
    user = make_user(tenant)
    start = threading.Barrier(7)
    outcomes: list[str] = []

    def guess() -> None:
        with acting_for(app, tenant) as session:
            start.wait()
            try:
                auth.authenticate(user.email, "a wrong guess", ip="203.0.113.9")
            except auth.LoginRefused as refused:
                outcomes.append("locked" if refused.locked else "refused")
            session.commit()

    threads = [threading.Thread(target=guess) for _ in range(7)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["locked"] * 3 + ["refused"] * 4
    actions = audit_actions(app, tenant)
    assert actions.count("auth.login_failed") == 5
    assert actions.count("auth.locked") == 1
    assert actions.count("auth.login_refused") == 2
