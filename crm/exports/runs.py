"""Tenant exports an admin starts from the app: run as a job (rq, or in-process after
the commit without Redis), with their progress on the page, and a download that
expires."""

import logging
import secrets
from datetime import timedelta
from pathlib import Path

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select, update

from crm import jobs
from crm.audit.service import Actor, record
from crm.columns import utcnow
from crm.errors import Conflict
from crm.exports.models import ExportStatus, TenantExportRun
from crm.exports.tenant_export import ticket_count, write_tenant_export
from crm.extensions import db
from tenants import current_tenant_id

log = logging.getLogger(__name__)

DOWNLOAD_HOURS = 24


def export_folder() -> Path:
    root = current_app.config.get("EXPORT_FOLDER") or Path(current_app.instance_path) / "exports"
    return Path(root) / str(current_tenant_id())


def runs() -> list[TenantExportRun]:
    return list(db.session.scalars(select(TenantExportRun).order_by(TenantExportRun.id.desc()).limit(20)))


def run_by_id(run_id: int) -> TenantExportRun | None:
    return db.session.scalars(select(TenantExportRun).where(TenantExportRun.id == run_id)).one_or_none()


def start(*, user_id: int, actor: Actor) -> TenantExportRun:
    """Queue an export of the whole tenant; one at a time."""
    busy = db.session.scalars(
        select(TenantExportRun).where(TenantExportRun.status.in_((ExportStatus.QUEUED, ExportStatus.RUNNING)))
    ).first()
    if busy is not None:
        raise Conflict(_l("An export is already running. Wait for it to finish."), "export")
    run = TenantExportRun(requested_by_id=user_id, status=ExportStatus.QUEUED, total=ticket_count(), done=0)
    db.session.add(run)
    db.session.flush()
    record("export.requested", "tenant_export", run.id, actor=actor, data={"kind": "tenant_export"})
    jobs.enqueue(run_export, run.id)
    return run


def _progress(run_id: int, **values) -> None:
    """Progress is written on a connection of its own, committed at once, so the page
    shows it while the export's own transaction is still open."""
    with db.engine.begin() as connection:
        connection.execute(
            update(TenantExportRun.__table__)
            .where(TenantExportRun.id == run_id, TenantExportRun.tenant_id == current_tenant_id())
            .values(**values)
        )


def run_export(run_id: int) -> None:
    """The job: write the export as a ZIP under a random name, then make it downloadable
    for DOWNLOAD_HOURS. Expired files of the tenant are deleted first."""
    run = run_by_id(run_id)
    if run is None or run.status != ExportStatus.QUEUED:
        return  # already run (a retried job)
    _delete_expired()
    folder = export_folder()
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{secrets.token_hex(16)}.zip"
    _progress(run_id, status=ExportStatus.RUNNING)
    done = 0

    def advance(count: int) -> None:
        nonlocal done
        done += count
        _progress(run_id, done=done)

    try:
        write_tenant_export(folder / name, actor=Actor.system(), progress=advance, as_zip=True)
    except Exception as error:
        db.session.rollback()
        log.exception("tenant export %s failed", run_id)
        _progress(run_id, status=ExportStatus.FAILED, error=type(error).__name__, finished_at=utcnow())
        return
    now = utcnow()
    run = run_by_id(run_id)
    run.status, run.file_name, run.finished_at = ExportStatus.DONE, name, now
    run.size, run.done, run.expires_at = (
        (folder / name).stat().st_size,
        done,
        now + timedelta(hours=DOWNLOAD_HOURS),
    )


def downloadable(run: TenantExportRun) -> Path | None:
    if run.status != ExportStatus.DONE or run.file_name is None or run.expires_at <= utcnow():
        return None
    path = export_folder() / run.file_name
    return path if path.exists() else None


def _delete_expired() -> None:
    for run in db.session.scalars(
        select(TenantExportRun).where(
            TenantExportRun.expires_at <= utcnow(), TenantExportRun.file_name.is_not(None)
        )
    ):
        (export_folder() / run.file_name).unlink(missing_ok=True)
