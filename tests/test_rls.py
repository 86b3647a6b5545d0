"""Defence in depth on PostgreSQL: connected as the application's role, the database
itself keeps tenants apart (row-level security keyed on the transaction's tenant) and
keeps the audit tables append-only, whatever SQL is sent; and the app works as that role."""

import re

import psycopg
import pytest
from sqlalchemy.engine import make_url

from crm import create_app
from crm.audit.service import verify_chain
from crm.extensions import db
from crm.tickets import service as tickets
from tests.conftest import acting_for, requires_postgres
from tests.test_ticket_service import refund_request

ROLE = "ledgerdesk_app_test"


def conninfo(app, user: str | None = None) -> str:
    url = make_url(app.config["OWNER_DATABASE_URI"]).set(drivername="postgresql")
    if user:
        url = url.set(username=user, password=None)
    return url.render_as_string(hide_password=False)


@pytest.fixture
def app_role(app):
    """The role, set up by the command as the owner runs it after migrating."""
    owner = create_app({"SQLALCHEMY_DATABASE_URI": app.config["OWNER_DATABASE_URI"], "REDIS_URL": None})
    result = owner.test_cli_runner().invoke(args=["db", "grant-app-role", ROLE])
    with owner.app_context():
        db.engine.dispose()
    assert result.exit_code == 0, result.output
    assert "REVOKE UPDATE, DELETE, TRUNCATE ON audit_events" in result.output
    return conninfo(app, ROLE)


def submitted(app, tenant) -> int:
    with acting_for(app, tenant) as session:
        ticket = tickets.submit_refund_request(refund_request(), nonce=f"rls-{tenant.slug}", ip=None).ticket
        session.commit()
        return ticket.id


@requires_postgres
def test_every_tenant_table_has_its_policy(app):
    with psycopg.connect(conninfo(app)) as connection:
        missing = connection.execute(
            """
            SELECT c.table_name FROM information_schema.columns c
            JOIN pg_class t ON t.relname = c.table_name AND t.relnamespace = current_schema()::regnamespace
            WHERE c.column_name = 'tenant_id' AND c.table_schema = current_schema()
              AND NOT (t.relrowsecurity AND EXISTS (
                  SELECT 1 FROM pg_policy p WHERE p.polrelid = t.oid AND p.polname = 'tenant_isolation'))
            """
        ).fetchall()
    assert missing == []


@requires_postgres
def test_raw_sql_as_the_app_role_sees_and_writes_only_the_tenant_in_its_transaction(
    app, app_role, make_tenant
):
    mine, theirs = make_tenant(), make_tenant()
    submitted(app, mine)
    their_ticket = submitted(app, theirs)
    with psycopg.connect(app_role) as connection:
        # No tenant set: tenant tables read as empty.
        assert connection.execute("SELECT count(*) FROM tickets").fetchone() == (0,)
        connection.execute("SELECT set_config('ledgerdesk.tenant_id', %s, true)", (str(mine.id),))
        # A query that forgets its tenant filter, or names the other tenant, finds nothing of theirs.
        assert connection.execute(
            "SELECT count(*) FROM tickets WHERE id = %s", (their_ticket,)
        ).fetchone() == (0,)
        assert connection.execute("SELECT DISTINCT tenant_id FROM tickets").fetchall() == [(mine.id,)]
        assert (
            connection.execute(
                "UPDATE tickets SET priority = 'urgent' WHERE id = %s", (their_ticket,)
            ).rowcount
            == 0
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            connection.execute(
                "INSERT INTO customers (tenant_id, name, created_at) VALUES (%s, 'x', now())", (theirs.id,)
            )
    with psycopg.connect(conninfo(app)) as owner:
        priority = owner.execute("SELECT priority FROM tickets WHERE id = %s", (their_ticket,)).fetchone()
    assert priority != ("urgent",)


@requires_postgres
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET action = 'x'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
        "DELETE FROM audit_checkpoints",
        "UPDATE audit_merkle_blocks SET hash = 'x'",
    ],
)
def test_the_app_role_may_only_add_to_and_read_the_audit_tables(app, app_role, make_tenant, statement):
    tenant = make_tenant()
    submitted(app, tenant)
    with psycopg.connect(app_role) as connection:
        connection.execute("SELECT set_config('ledgerdesk.tenant_id', %s, true)", (str(tenant.id),))
        assert connection.execute("SELECT count(*) FROM audit_events").fetchone()[0] > 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            connection.execute(statement)


@requires_postgres
def test_the_app_serves_its_form_and_desk_connected_as_the_app_role(app, app_role, make_tenant, make_user):
    tenant = make_tenant()
    agent = make_user(tenant, "agent")
    role_url = make_url(app.config["OWNER_DATABASE_URI"]).set(username=ROLE, password=None)
    as_role = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": role_url.render_as_string(hide_password=False),
            "REDIS_URL": None,
            "PASSWORD_HASH_METHOD": "scrypt:1024:8:1",
            "UPLOAD_FOLDER": app.config["UPLOAD_FOLDER"],
            "PUBLIC_BASE_URL": "http://localhost",
        }
    )
    client = as_role.test_client()
    page = client.get(f"/t/{tenant.slug}/refund")
    tokens = dict(
        re.findall(r'name="(csrf_token|submission_token)" type="hidden" value="([^"]+)"', page.text)
    )
    fields = {
        "name": "王小明",
        "phone": "13800138000",
        "reason": "unused_balance",
        "description": "请退款。",
        "amount": "10.00",
        "currency": "CNY",
        "consent": "y",
        "website": "",
    }
    sent = client.post(f"/t/{tenant.slug}/refund", data={**tokens, **fields})
    assert sent.status_code == 302 and "/receipt/" in sent.headers["Location"]
    staff = as_role.test_client()
    login = staff.get(f"/t/{tenant.slug}/login").text
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', login).group(1)
    signed = staff.post(
        f"/t/{tenant.slug}/login",
        data={"csrf_token": token, "email": agent.email, "password": agent.password},
    )
    assert signed.status_code == 302
    queue = staff.get(f"/t/{tenant.slug}/tickets")
    assert queue.status_code == 200 and "RF-1001" in queue.text
    with as_role.app_context():
        db.engine.dispose()
    # The trail the role wrote verifies, read by the owner.
    with acting_for(app, tenant):
        assert verify_chain().ok
