"""The backup and restore drill (PostgreSQL): dump a populated desk with pg_dump, copy
its upload folder, restore both elsewhere, and check the copy as an inspector would:
the audit chain and its signed checkpoint verify, the counts match, every file is there
with the bytes its record names (docs/operations.md, "Backup and restore")."""

import hashlib
import shutil
import subprocess
import uuid

import psycopg
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from crm import create_app
from crm.audit import checkpoints
from crm.audit.models import AuditEvent
from crm.audit.service import Actor
from crm.extensions import db
from crm.files.models import Attachment
from crm.files.storage import blob_path
from crm.sla.models import Clock
from crm.tickets import service as tickets
from crm.tickets.models import Ticket
from tenants import tenant_context
from tenants.models import Tenant
from tests.conftest import acting_for, requires_postgres
from tests.test_portal import PDF, PNG
from tests.test_ticket_service import refund_request

COUNTED = (Ticket, Clock, AuditEvent, Attachment)


def libpq_url(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


def counts(tenant_id: int) -> dict[str, int]:
    tenant = db.session.get(Tenant, tenant_id)
    with tenant_context(tenant):
        return {
            model.__name__: db.session.scalar(select(func.count()).select_from(model)) for model in COUNTED
        }


@requires_postgres
def test_a_dumped_desk_restores_elsewhere_and_verifies(app, make_tenant, tmp_path):
    tenant = make_tenant()
    with acting_for(app, tenant) as session:
        for number, upload in enumerate((PDF, PNG, None)):
            uploads = [tickets.Upload(f"evidence-{number}", upload)] if upload else []
            tickets.submit_refund_request(refund_request(uploads=uploads), nonce=f"backup-{number}", ip=None)
        session.commit()
        checkpoints.write_checkpoint(actor=Actor.operator("test"))
        session.commit()
    with app.app_context():
        before = counts(tenant.id)
    assert before["Attachment"] == 2 and before["AuditEvent"] > 10

    # The backup: the database with pg_dump, the upload folder as files.
    source = app.config["OWNER_DATABASE_URI"]
    dump = tmp_path / "desk.dump"
    subprocess.run(["pg_dump", "--format=custom", "--file", str(dump), libpq_url(source)], check=True)
    uploads = tmp_path / "uploads-copy"
    shutil.copytree(app.config["UPLOAD_FOLDER"], uploads)

    # The restore, into a database of its own.
    restored = f"restore_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(libpq_url(source), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{restored}"')
    try:
        subprocess.run(
            [
                "pg_restore",
                "--no-owner",
                "--exit-on-error",
                "--dbname",
                libpq_url(source, restored),
                str(dump),
            ],
            check=True,
        )
        copy = create_app(
            {
                "TESTING": True,
                "SQLALCHEMY_DATABASE_URI": make_url(source)
                .set(database=restored)
                .render_as_string(hide_password=False),
                "REDIS_URL": None,
                "UPLOAD_FOLDER": str(uploads),
                "AUDIT_SIGNING_KEY": app.config["AUDIT_SIGNING_KEY"],
            }
        )
        verified = copy.test_cli_runner().invoke(args=["audit", "verify", "--tenant", tenant.slug])
        assert verified.exit_code == 0, verified.output
        assert "checkpoints: 1, each signed by a published key and matching the chain" in verified.output
        with copy.app_context():
            assert counts(tenant.id) == before
            with tenant_context(db.session.get(Tenant, tenant.id)):
                for attachment in db.session.scalars(select(Attachment)):
                    kept = blob_path(attachment.tenant_id, attachment.sha256).read_bytes()
                    assert hashlib.sha256(kept).hexdigest() == attachment.sha256
            db.session.remove()
            db.engine.dispose()
    finally:
        with psycopg.connect(libpq_url(source), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{restored}" WITH (FORCE)')
