"""Fault drills (issue 16): what a customer sees when something underneath fails, and
that nothing accepted is lost and nothing is half-written."""

import hashlib
import html
import re
from contextlib import contextmanager

import psycopg
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.engine import make_url

from crm.extensions import db
from crm.files.storage import blob_path
from crm.tickets.models import Ticket
from tests.conftest import acting_for, requires_postgres
from tests.test_api import make_key
from tests.test_portal import PDF, good_fields, send_form, ticket_count

TOKENS = re.compile(r'name="(csrf_token|submission_token)" type="hidden" value="([^"]+)"')
FIELDS = {
    "name": "王小明",
    "phone": "13800138000",
    "reason": "unused_balance",
    "description": "号码已停用，请退还剩余预存款。",
    "amount": "99.00",
    "currency": "CNY",
    "consent": "y",
    "website": "",
}


@contextmanager
def backend_killed_at(app, sql_prefix: str):
    """Terminate the request's PostgreSQL backend, from another connection, just as it
    sends the first statement starting with ``sql_prefix`` (once)."""
    url = make_url(app.config["OWNER_DATABASE_URI"]).set(drivername="postgresql")
    killed = []

    def kill(connection, cursor, statement, parameters, context, executemany):
        if killed or not statement.lstrip().upper().startswith(sql_prefix):
            return
        pid = connection.connection.dbapi_connection.info.backend_pid
        with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s)", (pid,))
        killed.append(pid)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", kill)
    try:
        yield killed
    finally:
        event.remove(engine, "before_cursor_execute", kill)


@requires_postgres
def test_a_backend_killed_mid_submission_answers_503_and_the_retry_makes_one_ticket(app, client, make_tenant):
    tenant = make_tenant()
    page = client.get(f"/t/{tenant.slug}/refund")
    form = {**dict(TOKENS.findall(page.text)), **FIELDS}
    with backend_killed_at(app, "INSERT INTO TICKETS") as killed:
        lost = client.post(f"/t/{tenant.slug}/refund", data=form)
    assert killed, "the drill never reached the ticket's INSERT"
    # Retry-After: at least 5 s (the form's rate limiter may name its own window's end).
    assert lost.status_code == 503 and int(lost.headers["Retry-After"]) >= 5
    assert "nothing was saved. Please send it again." in lost.text
    with acting_for(app, tenant) as session:
        assert session.scalar(select(func.count()).select_from(Ticket)) == 0  # nothing half-written

    retried = client.post(f"/t/{tenant.slug}/refund", data=form)  # the same submission token
    again = client.post(f"/t/{tenant.slug}/refund", data=form)  # and a double click after it
    assert retried.status_code == again.status_code == 302
    assert retried.headers["Location"] == again.headers["Location"]
    with acting_for(app, tenant) as session:
        assert session.scalar(select(func.count()).select_from(Ticket)) == 1


@requires_postgres
@pytest.mark.parametrize("path", ["/tickets", "/dnc/check?phone=13800138000"])
def test_the_api_answers_a_lost_database_with_a_problem_document(app, client, make_tenant, path):
    tenant = make_tenant()
    key = make_key(app, tenant, "tickets:read,dnc:read")
    with backend_killed_at(app, "SELECT") as killed:
        lost = client.get(f"/t/{tenant.slug}/api/v1{path}", headers={"Authorization": f"Bearer {key}"})
    assert killed
    assert lost.status_code == 503 and lost.mimetype == "application/problem+json"
    assert lost.json["status"] == 503
    assert (
        client.get(f"/t/{tenant.slug}/api/v1{path}", headers={"Authorization": f"Bearer {key}"}).status_code
        == 200
    )


@pytest.fixture
def unwritable_uploads(app, tmp_path):
    """The upload folder's place taken by a file: nothing can be written under it (as a
    full or read-only disk refuses; chmod does not stop root, which the tests may run as)."""
    kept = app.config["UPLOAD_FOLDER"]
    blocked = tmp_path / "uploads"
    blocked.write_text("not a folder")
    app.config["UPLOAD_FOLDER"] = str(blocked)
    yield
    app.config["UPLOAD_FOLDER"] = kept


def test_an_unwritable_upload_folder_refuses_the_form_clearly_and_keeps_nothing(
    app, client, make_tenant, unwritable_uploads
):
    tenant = make_tenant()
    refused = send_form(client, tenant.slug, good_fields(), files=[("invoice.pdf", PDF)])
    assert refused.status_code == 503
    assert "We could not store your files just now, so nothing was saved." in html.unescape(refused.text)
    assert 'value="李雷"' in refused.text  # what was typed is kept on the page
    assert ticket_count(app, tenant) == 0


@requires_postgres
def test_a_file_stored_for_a_submission_that_failed_is_removed(app, client, make_tenant):
    tenant = make_tenant()
    content = PDF + b"% drill " + tenant.slug.encode()
    with backend_killed_at(app, "INSERT INTO TICKETS") as killed:
        lost = send_form(client, tenant.slug, good_fields(), files=[("invoice.pdf", content)])
    assert killed and lost.status_code == 503
    assert ticket_count(app, tenant) == 0
    with app.app_context():
        assert not blob_path(tenant.id, hashlib.sha256(content).hexdigest()).exists()
    kept = send_form(client, tenant.slug, good_fields(), files=[("invoice.pdf", content)])
    assert kept.status_code == 302
    with app.app_context():
        assert blob_path(tenant.id, hashlib.sha256(content).hexdigest()).read_bytes() == content
