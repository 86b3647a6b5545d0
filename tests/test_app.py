"""The app as an operator meets it: configuration, health, schema, the demo, errors."""

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select

from crm import create_app
from crm.auth.models import User
from crm.config import ConfigError, database_url, from_environment
from crm.demo.seed import USERS, seed_demo
from crm.extensions import db
from crm.provisioning.service import tenant_by_slug
from crm.tickets import search
from crm.tickets.models import Ticket
from tenants import Tenant, tenant_context
from tests.conftest import acting_for

ROOT = Path(__file__).resolve().parent.parent


def test_healthz_answers_while_the_process_is_up(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json == {"status": "ok"}


def test_readyz_checks_the_database(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json["checks"]["database"] == "ok"


def test_readyz_answers_503_naming_what_is_down(tmp_path):
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://nobody@127.0.0.1:1/nothing?connect_timeout=1",
            "REDIS_URL": "redis://127.0.0.1:1/0",
        }
    )
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"]["database"].startswith("down")
    assert response.json["checks"]["redis"].startswith("down")


@pytest.mark.parametrize(
    "raw, message",
    [
        ("not a url", "not a database URL"),
        ("mysql://root@localhost/x", "PostgreSQL or SQLite"),
        ("postgresql://postgres@127.0.0.1:5432", "names no database"),
    ],
)
def test_malformed_database_url_is_a_clear_error(tmp_path, raw, message):
    with pytest.raises(ConfigError, match=message):
        database_url(raw, tmp_path)


def test_postgres_urls_get_the_psycopg_driver(tmp_path):
    assert database_url("postgres://u@h/db", tmp_path).startswith("postgresql+psycopg://")


def test_production_requires_a_secret_key(tmp_path):
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        from_environment(tmp_path, {"CRM_ENV": "production"})
    config = from_environment(
        tmp_path,
        {
            "CRM_ENV": "production",
            "SECRET_KEY": "s" * 40,
            "PUBLIC_BASE_URL": "https://desk.example.com",
            "AUDIT_SIGNING_KEY": base64.b64encode(bytes(32)).decode(),
        },
    )
    assert config["SESSION_COOKIE_SECURE"] is True


def test_development_secret_key_is_generated_once_and_kept(tmp_path):
    first = from_environment(tmp_path, {})["SECRET_KEY"]
    assert len(first) == 64 and from_environment(tmp_path, {})["SECRET_KEY"] == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def run_flask(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_with_a_malformed_database_url_exits_with_a_message_not_a_traceback():
    result = run_flask("tenants", "list", env={"DATABASE_URL": "::nonsense::"})
    assert result.returncode != 0
    assert "DATABASE_URL is not a database URL" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_against_an_empty_database_says_to_migrate(tmp_path):
    result = run_flask("tenants", "list", env={"DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}"})
    assert result.returncode == 1
    assert "flask --app wsgi db upgrade" in result.stderr
    assert "Traceback" not in result.stderr


def test_migrations_match_the_models(app):
    with app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_object": search.in_models}
        )
        differences = compare_metadata(context, db.metadata)
    assert differences == []


def test_tenant_cli_creates_lists_and_refuses_bad_input(runner):
    ok = runner.invoke(args=["tenants", "create", "acme-cli", "--name", "Acme 电信", "--locale", "zh_CN"])
    assert ok.exit_code == 0, ok.output
    listing = runner.invoke(args=["tenants", "list"])
    assert "acme-cli\tactive\tAsia/Shanghai\tzh_CN\tCNY\tAcme 电信" in listing.output
    for args, message in [
        (["acme-cli", "--name", "Again"], "already exists"),
        (["Bad Slug!", "--name", "X"], "slug"),
        (["ok-slug", "--name", ""], "name"),
        (["ok-slug", "--name", "X" * 201], "name"),
        (["ok-slug", "--name", "X", "--timezone", "Mars/Olympus"], "Unknown time zone"),
        (["ok-slug", "--name", "X", "--locale", "fr"], "Unsupported locale"),
        (["ok-slug", "--name", "X", "--currency", "XYZW"], "Unknown currency"),
    ]:
        result = runner.invoke(args=["tenants", "create", *args])
        assert result.exit_code == 1, (args, result.output)
        assert message in result.output
    missing = runner.invoke(args=["tenants", "suspend", "no-such-tenant"])
    assert missing.exit_code == 1 and "No tenant has the slug" in missing.output


def test_demo_seed_is_idempotent_and_its_chain_verifies(app, runner):
    first = runner.invoke(args=["demo", "seed"])
    second = runner.invoke(args=["demo", "seed"])
    assert first.exit_code == second.exit_code == 0, first.output + second.output
    assert "demo data already present" in second.output
    assert "password: " in second.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Tenant).where(Tenant.slug == "demo")) == 1
        demo = tenant_by_slug("demo")
        with tenant_context(demo):
            assert db.session.scalar(select(func.count()).select_from(User)) == len(USERS)
            seed_demo("another-password")  # a third run changes nothing
            assert db.session.scalar(select(func.count()).select_from(User)) == len(USERS)
            db.session.rollback()
    verify = runner.invoke(args=["audit", "verify", "--tenant", "demo"])
    assert verify.exit_code == 0 and verify.output.startswith("ok: ")
    with app.app_context(), tenant_context(tenant_by_slug("demo")):
        statuses = set(db.session.scalars(select(Ticket.status)))
    assert statuses == {
        "new",
        "open",
        "awaiting_customer",
        "pending_approval",
        "resolved",
        "closed",
        "withdrawn",
    }


def test_unknown_pages_get_a_friendly_404(client, make_tenant):
    tenant = make_tenant()
    response = client.get(f"/t/{tenant.slug}/no-such-page")
    assert response.status_code == 404
    assert "This page does not exist." in response.text and tenant.name in response.text


def test_wrong_method_is_a_405_page(client, make_tenant):
    tenant = make_tenant()
    response = client.post(f"/t/{tenant.slug}/audit")
    assert response.status_code in (400, 405)  # CSRF is checked first on any POST


@pytest.mark.parametrize(
    "tenant_locale, accept, expected",
    [(None, "zh-CN,zh;q=0.9", "员工登录"), (None, "en-US", "Staff sign-in"), ("zh_CN", "en-US", "员工登录")],
)
def test_login_page_language_follows_tenant_then_browser(
    client, make_tenant, tenant_locale, accept, expected
):
    tenant = make_tenant(locale=tenant_locale)
    page = client.get(f"/t/{tenant.slug}/login", headers={"Accept-Language": accept})
    assert expected in page.text


def test_chosen_language_beats_tenant_default_and_browser(app, client, make_tenant):
    from tests.conftest import submit

    tenant = make_tenant(locale="zh_CN")
    response = submit(
        client,
        f"/t/{tenant.slug}/language",
        {"locale": "en", "next": f"/t/{tenant.slug}/login"},
        form_page=f"/t/{tenant.slug}/login",
    )
    assert response.status_code == 302
    assert "Staff sign-in" in client.get(f"/t/{tenant.slug}/login", headers={"Accept-Language": "zh-CN"}).text


def test_a_signed_in_users_language_is_theirs(app, client, signed_in):
    from tests.conftest import submit

    tenant, _user = signed_in("agent")
    submit(client, f"/t/{tenant.slug}/account", {"lang-locale": "zh_CN"})
    page = client.get(f"/t/{tenant.slug}/", headers={"Accept-Language": "en"})
    assert "退出登录" in page.text and 'lang="zh-CN"' in page.text
    with acting_for(app, tenant) as session:
        assert session.scalars(select(User.locale)).one() == "zh_CN"


def test_admin_changes_the_settings_customers_see(app, client, signed_in):
    from tests.conftest import submit

    tenant, _admin = signed_in("admin")
    page = client.get(f"/t/{tenant.slug}/admin/settings")
    assert page.status_code == 200 and f"/t/{tenant.slug}/refund" in page.text
    fields = {
        "ticket_prefix": "cx",
        "form_submissions_per_hour": "20",
        "agent_display": "team",
        "team_name": "退款专员",
        "country": "cn",
        "privacy_notice": "We keep your data for 3 years.",
        "approval_threshold": "800",
    }
    assert submit(client, f"/t/{tenant.slug}/admin/settings", fields).status_code == 302
    form = client.get(f"/t/{tenant.slug}/refund")
    assert "We keep your data for 3 years." in form.text
    with acting_for(app, tenant) as session:
        from crm.audit.models import AuditEvent

        event = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "tenant.settings_changed")
        ).one()
        assert event.data["ticket_prefix"] == {"before": "RF", "after": "CX"}
        assert "privacy_notice" not in event.data and "privacy_notice_sha256" in event.data
        assert event.data["approval_threshold_minor"] == {"before": 50_000, "after": 80_000}
    for bad, message in [
        ({"ticket_prefix": "R2"}, "Use 1 to 8 letters"),
        ({"country": "ZZ"}, "two-letter country code"),
        ({"team_name": ""}, "This field is required."),
        ({"approval_threshold": "-5"}, "Number must be between 0 and"),
        ({"refund_reasons": "Good Will | x"}, "Line 1: a code of lowercase letters"),
    ]:
        response = submit(client, f"/t/{tenant.slug}/admin/settings", {**fields, **bad})
        assert response.status_code in (400, 422) and message in response.text, bad


@pytest.mark.parametrize("role", ["agent", "manager", "auditor"])
def test_only_admins_change_settings(client, signed_in, role):
    tenant, _user = signed_in(role)
    assert client.get(f"/t/{tenant.slug}/admin/settings").status_code == 403
