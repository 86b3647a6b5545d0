"""Admins start a whole-tenant export from the app: it runs as a job, shows its
progress, gives a ZIP that verify.py checks, and its link expires."""

import hashlib
import zipfile
from datetime import timedelta

from rq import SimpleWorker
from sqlalchemy import select, update

from crm import jobs
from crm.audit.models import AuditEvent
from crm.columns import utcnow
from crm.exports import runs
from crm.exports.models import ExportStatus, TenantExportRun
from crm.files.storage import blob_path
from crm.tickets import service as tickets
from tests.conftest import acting_for, login, requires_redis, run_bundled_verifier, submit, unique
from tests.test_portal import PNG
from tests.test_ticket_service import refund_request

PAGE = "/t/{slug}/admin/exports"


def filed(app, tenant, content: bytes = PNG) -> None:
    request = refund_request(uploads=[tickets.Upload("账单.png", content)])
    with acting_for(app, tenant) as session:
        tickets.submit_refund_request(request, nonce=unique("n"), ip=None)
        session.commit()


def start(client, tenant):
    page = PAGE.format(slug=tenant.slug)
    return submit(client, page, {}, form_page=page)


def test_an_admin_exports_everything_and_downloads_a_zip_that_verifies(app, client, signed_in, tmp_path):
    tenant, _ = signed_in("admin")
    filed(app, tenant)
    assert "No export yet." in client.get(PAGE.format(slug=tenant.slug)).text
    assert start(client, tenant).status_code == 302  # without Redis it ran right after the commit
    page = client.get(PAGE.format(slug=tenant.slug)).text
    assert "Download ZIP" in page and "100%" in page and "1 of 1 case" in page
    with acting_for(app, tenant):
        [run] = runs.runs()
    bundle = tmp_path / "export.zip"
    with client.get(f"{PAGE.format(slug=tenant.slug)}/{run.id}/download") as download:
        assert download.status_code == 200 and download.mimetype == "application/zip"
        bundle.write_bytes(download.data)
    with zipfile.ZipFile(bundle) as archive:
        assert "cases.jsonl" in archive.namelist()
    checked = run_bundled_verifier(bundle, tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Ledgerdesk tenant export" in checked.stdout
    with acting_for(app, tenant) as session:
        actions = session.scalars(
            select(AuditEvent.action).where(AuditEvent.action.startswith("export.")).order_by(AuditEvent.seq)
        ).all()
    assert actions == ["export.requested", "export.created", "export.downloaded"]


def test_one_export_at_a_time(app, client, signed_in):
    tenant, admin = signed_in("admin")
    with acting_for(app, tenant) as session:
        session.add(TenantExportRun(requested_by_id=admin.id, status=ExportStatus.RUNNING, total=5, done=2))
        session.commit()
    refused = client.get(PAGE.format(slug=tenant.slug))
    assert "This page refreshes itself while an export runs." in refused.text and "40%" in refused.text
    response = start(client, tenant)
    assert response.status_code == 302
    assert "An export is already running." in client.get(PAGE.format(slug=tenant.slug)).text
    with acting_for(app, tenant):
        assert len(runs.runs()) == 1


def test_an_expired_link_is_gone(app, client, signed_in):
    tenant, _ = signed_in("admin")
    start(client, tenant)
    with acting_for(app, tenant) as session:
        [run] = runs.runs()
        run_id = run.id
        session.execute(
            update(TenantExportRun)
            .where(TenantExportRun.id == run_id)
            .values(expires_at=utcnow() - timedelta(1))
        )
        session.commit()
    gone = client.get(f"{PAGE.format(slug=tenant.slug)}/{run_id}/download")
    assert gone.status_code == 410 and "This download has expired" in gone.text
    assert "Expired" in client.get(PAGE.format(slug=tenant.slug)).text


def test_a_failed_export_says_so_and_leaves_no_file(app, client, signed_in):
    tenant, _ = signed_in("admin")
    own = PNG + b"this test's own"
    filed(app, tenant, own)
    with app.app_context():
        blob_path(tenant.id, hashlib.sha256(own).hexdigest()).unlink()
    start(client, tenant)
    assert "Failed" in client.get(PAGE.format(slug=tenant.slug)).text
    with acting_for(app, tenant):
        [run] = runs.runs()
        assert run.status == ExportStatus.FAILED and run.file_name is None
        folder = runs.export_folder()
        assert not folder.exists() or not any(folder.iterdir())


def test_only_admins_and_only_their_tenant(app, client, signed_in, make_tenant, make_user):
    tenant, _ = signed_in("admin")
    start(client, tenant)
    with acting_for(app, tenant):
        [run] = runs.runs()
    for role in ("manager", "agent", "auditor"):
        other = app.test_client()
        assert login(other, tenant, make_user(tenant, role)).status_code == 302
        assert other.get(PAGE.format(slug=tenant.slug)).status_code == 403
        assert other.get(f"{PAGE.format(slug=tenant.slug)}/{run.id}/download").status_code == 403
    stranger = make_tenant()
    outsider = app.test_client()
    assert login(outsider, stranger, make_user(stranger, "admin")).status_code == 302
    assert outsider.get(f"{PAGE.format(slug=stranger.slug)}/{run.id}/download").status_code == 404


@requires_redis
def test_with_redis_the_worker_runs_the_export(rq_app, make_tenant, make_user):
    tenant = make_tenant()
    admin = make_user(tenant, "admin")
    client = rq_app.test_client()
    assert login(client, tenant, admin).status_code == 302
    start(client, tenant)
    with acting_for(rq_app, tenant):
        [run] = runs.runs()
        assert run.status == ExportStatus.QUEUED
    with rq_app.app_context():
        SimpleWorker([jobs.queue()], connection=jobs.redis_connection()).work(burst=True)
    with acting_for(rq_app, tenant):
        [run] = runs.runs()
        assert run.status == ExportStatus.DONE and runs.downloadable(run) is not None
