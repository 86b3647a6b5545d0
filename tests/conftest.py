"""Fixtures shared by the suite.

One app and one database per run: on SQLite by default, on PostgreSQL when
DATABASE_URL is set (as in CI). Tests stay independent by creating their own tenants
with unique slugs, which is also how the product keeps its customers apart.
"""

import itertools
import os
import re
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from crm import create_app, jobs
from crm.audit.service import Actor
from crm.auth import service as auth
from crm.config import database_url
from crm.extensions import db
from crm.provisioning import service as provisioning
from tenants import CurrentTenant, roles, tenant_context
from tests.browser import browser, live_server  # noqa: F401  (fixtures for the browser tests)
from tests.imap import dovecot  # noqa: F401  (a real IMAP server)
from tests.mail import make_app, smtp_down_url, smtp_server, smtp_url  # noqa: F401  (mail fixtures)

PASSWORD = "correct horse battery"
CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
POSTGRES_URL = os.environ.get("DATABASE_URL")
REDIS_URL = os.environ.get("REDIS_URL")
# The PostgreSQL run's application role (make test sets it): see the ``app`` fixture.
APP_ROLE = os.environ.get("APP_DATABASE_ROLE")

_skip_without_postgres = pytest.mark.skipif(not POSTGRES_URL, reason="needs PostgreSQL (DATABASE_URL)")
_skip_without_redis = pytest.mark.skipif(not REDIS_URL, reason="needs Redis (REDIS_URL)")


def requires_postgres(test):
    """Mark ``test`` ``postgres`` (``-m postgres`` selects it) and skip it without
    DATABASE_URL: one decorator for both, so the marker and the skip cannot drift."""
    return pytest.mark.postgres(_skip_without_postgres(test))


def requires_redis(test):
    """Mark ``test`` ``redis`` and skip it without REDIS_URL (see ``requires_postgres``)."""
    return pytest.mark.redis(_skip_without_redis(test))


def pytest_collection_modifyitems(config, items) -> None:
    """A test that takes ``rq_app`` needs Redis, decorated or not."""
    for item in items:
        if "rq_app" in getattr(item, "fixturenames", ()) and not item.get_closest_marker("redis"):
            item.add_marker(pytest.mark.redis)
            item.add_marker(_skip_without_redis)


def _fresh_database(tmp_path_factory) -> str:
    if not POSTGRES_URL:
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"
    url = database_url(POSTGRES_URL, instance_path=None)
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def app(tmp_path_factory) -> Iterator[Flask]:
    """The app, its database migrated by the owner. With APP_DATABASE_ROLE (the
    PostgreSQL run in CI), the app then connects as that role, as production should:
    row-level security binds every test (docs/operations.md). ``OWNER_DATABASE_URI`` is
    the owner's, for tests that inspect or break the database from outside."""
    owner_url = _fresh_database(tmp_path_factory)
    config = {
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": owner_url,
        "OWNER_DATABASE_URI": owner_url,
        "REDIS_URL": None,
        # Cheap hashing keeps the suite fast; production keeps scrypt's defaults.
        "PASSWORD_HASH_METHOD": "scrypt:1024:8:1",
        "UPLOAD_FOLDER": str(tmp_path_factory.mktemp("uploads")),
        "EXPORT_FOLDER": str(tmp_path_factory.mktemp("exports")),
        # Links in mail and receipts are built on it; the test client's host.
        "PUBLIC_BASE_URL": "http://localhost",
    }
    app = create_app(config)
    with app.app_context():
        upgrade()
        if POSTGRES_URL and APP_ROLE:
            with db.engine.begin() as connection:
                roles.grant_app_role(connection, APP_ROLE)
        db.session.remove()
        db.engine.dispose()
    if POSTGRES_URL and APP_ROLE:
        role_url = make_url(owner_url).set(username=APP_ROLE, password=None)
        as_role = role_url.render_as_string(hide_password=False)
        app = create_app({**config, "SQLALCHEMY_DATABASE_URI": as_role})
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def rq_app(app):
    """The same database, with jobs going to real Redis on a queue of this test's own."""
    rq_app = create_app(
        {
            **{
                key: app.config[key]
                for key in (
                    "TESTING",
                    "SQLALCHEMY_DATABASE_URI",
                    "PASSWORD_HASH_METHOD",
                    "UPLOAD_FOLDER",
                    "EXPORT_FOLDER",
                    "PUBLIC_BASE_URL",
                )
            },
            "REDIS_URL": REDIS_URL,
            "JOBS_QUEUE": f"crm-test-{uuid.uuid4().hex[:8]}",
        }
    )
    yield rq_app
    with rq_app.app_context():
        jobs.queue().delete(delete_jobs=True)
        db.engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask):
    return app.test_cli_runner()


_counter = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_counter)}-{uuid.uuid4().hex[:6]}"


@contextmanager
def acting_for(app: Flask, tenant: CurrentTenant | None) -> Iterator:
    """An app context acting for ``tenant``; yields the session. Keep requests outside
    it, so each request gets its own context and session, as in production."""
    with app.app_context(), tenant_context(tenant):
        yield db.session


@dataclass(frozen=True)
class StaffUser:
    id: int
    email: str
    role: str
    password: str = PASSWORD


@pytest.fixture
def make_tenant(app: Flask) -> Callable[..., CurrentTenant]:
    def make(**overrides) -> CurrentTenant:
        fields = {"slug": unique("t"), "name": "Provider " + uuid.uuid4().hex[:4], **overrides}
        with app.app_context():
            tenant = provisioning.create_tenant(actor=Actor.operator("test"), **fields)
            db.session.commit()
            return CurrentTenant.of(tenant)

    return make


@pytest.fixture
def make_user(app: Flask) -> Callable[..., StaffUser]:
    def make(tenant: CurrentTenant, role: str = "agent", email: str | None = None) -> StaffUser:
        with acting_for(app, tenant) as session:
            user = auth.create_user(
                email=email or f"{unique(role)}@example.test",
                role=role,
                password=PASSWORD,
                actor=Actor.operator("test"),
            )
            session.commit()
            return StaffUser(user.id, user.email, user.role)

    return make


def csrf_token(client: FlaskClient, url: str) -> str:
    page = client.get(url)
    match = CSRF_RE.search(page.text)
    assert match, f"no CSRF token on {url} ({page.status_code})"
    return match.group(1)


def submit(client: FlaskClient, url: str, data: dict, *, form_page: str | None = None, **kwargs):
    """POST a form the way a browser does: with the CSRF token of the page it is on."""
    return client.post(url, data={"csrf_token": csrf_token(client, form_page or url), **data}, **kwargs)


def login(client: FlaskClient, tenant: CurrentTenant, user: StaffUser, password: str | None = None):
    return submit(
        client, f"/t/{tenant.slug}/login", {"email": user.email, "password": password or user.password}
    )


@pytest.fixture
def signed_in(client, make_tenant, make_user) -> Callable[..., tuple[CurrentTenant, StaffUser]]:
    """Sign ``client`` in as a new user of ``role`` in a new (or given) tenant."""

    def sign_in(role: str = "admin", tenant: CurrentTenant | None = None):
        tenant = tenant or make_tenant()
        user = make_user(tenant, role)
        response = login(client, tenant, user)
        assert response.status_code == 302, response.text
        return tenant, user

    return sign_in


@pytest.fixture
def busy_tenant(app, client, make_tenant, make_user):
    """A tenant with a realistic history: users added, sign-ins, a failure, a role change."""
    tenant = make_tenant()
    admin = make_user(tenant, "admin")
    agent = make_user(tenant, "agent")
    login(client, tenant, admin)
    submit(client, f"/t/{tenant.slug}/admin/users/{agent.id}", {"role": "manager", "active": "y"})
    submit(client, f"/t/{tenant.slug}/account", {"lang-locale": "zh_CN"})
    other = app.test_client()
    login(other, tenant, agent, password="wrong password")
    login(other, tenant, agent)
    return tenant


def run_bundled_verifier(bundle: Path, tmp_path: Path, *options: str) -> subprocess.CompletedProcess:
    """The verify.py a bundle (a ZIP or a folder) carries, copied alone into an empty
    folder and run there with ``python -I``, as an inspector runs it: nothing of
    Ledgerdesk's can be imported."""
    inspector = tmp_path / "inspector"
    inspector.mkdir(exist_ok=True)
    if bundle.is_dir():
        script = (bundle / "verify.py").read_bytes()
    else:
        with zipfile.ZipFile(bundle) as archive:
            script = archive.read("verify.py")
    (inspector / "verify.py").write_bytes(script)
    return subprocess.run(
        [sys.executable, "-I", "verify.py", str(bundle), *options],
        cwd=inspector,
        capture_output=True,
        text=True,
        timeout=60,
    )
