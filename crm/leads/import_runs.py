"""Imports a manager starts from the page: the file is checked at once (a CSV with the
right header), kept under a random name, and imported by a job that writes its progress
where the page can read it while it runs."""

import hashlib
import secrets
from pathlib import Path

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select, update

from crm import jobs
from crm.audit.service import Actor, record
from crm.columns import utcnow
from crm.errors import Conflict, DomainError
from crm.extensions import db
from crm.leads import imports
from crm.leads.models import ImportRun, ImportStatus
from tenants import current_tenant_id

KINDS = {
    "leads": (imports.LEAD_COLUMNS, imports.import_leads),
    "dnc": (imports.DNC_COLUMNS, imports.import_dnc),
}


def import_folder() -> Path:
    root = current_app.config.get("IMPORT_FOLDER") or Path(current_app.instance_path) / "imports"
    return Path(root) / str(current_tenant_id())


def recent_runs() -> list[ImportRun]:
    return list(db.session.scalars(select(ImportRun).order_by(ImportRun.id.desc()).limit(10)))


def run_by_id(run_id: int) -> ImportRun | None:
    return db.session.get(ImportRun, run_id)


def start(kind: str, filename: str, content: bytes, *, user_id: int, actor: Actor) -> ImportRun:
    """Check the file and queue its import; one import at a time per tenant."""
    if kind not in KINDS:
        raise DomainError(_l("Choose what the file holds."), "kind")
    columns, _importer = KINDS[kind]
    try:
        total = sum(1 for _row in imports.read_csv(content, columns))
    except imports.BadFile as error:
        raise DomainError(str(error), "file") from None
    if total == 0:
        raise DomainError(_l("The file has a header but no rows."), "file")
    busy = db.session.scalars(
        select(ImportRun).where(ImportRun.status.in_((ImportStatus.QUEUED, ImportStatus.RUNNING)))
    ).first()
    if busy is not None:
        raise Conflict(_l("An import is already running. Wait for it to finish."), "file")
    folder = import_folder()
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{secrets.token_hex(16)}.csv"
    (folder / name).write_bytes(content)
    run = ImportRun(
        kind=kind,
        requested_by_id=user_id,
        status=ImportStatus.QUEUED,
        file_name=name,
        original_name=(filename or "import.csv")[:255],
        total=total,
        done=0,
        imported=0,
        merged=0,
        rejected=0,
        errors=[],
    )
    db.session.add(run)
    db.session.flush()
    record(
        "import.requested",
        "import_run",
        run.id,
        actor=actor,
        data={"kind": kind, "rows": total, "file_sha256": hashlib.sha256(content).hexdigest()},
    )
    jobs.enqueue(run_import, run.id, actor.kind, actor.id, actor.label)
    return run


def _progress(run_id: int, **values) -> None:
    """Written on a connection of its own, committed at once: the page sees it while the
    import's batches are still being written."""
    with db.engine.begin() as connection:
        connection.execute(
            update(ImportRun.__table__)
            .where(ImportRun.id == run_id, ImportRun.tenant_id == current_tenant_id())
            .values(**values)
        )


def run_import(run_id: int, actor_kind: str, actor_id: str | None, actor_label: str) -> None:
    """The job: import the file in batches, then keep the counts and rejected rows and
    delete the file."""
    run = run_by_id(run_id)
    if run is None or run.status != ImportStatus.QUEUED:
        return  # already run (a retried job)
    path = import_folder() / run.file_name
    columns, importer = KINDS[run.kind]
    _progress(run_id, status=ImportStatus.RUNNING)
    db.session.commit()
    try:
        rows = imports.read_csv(path.read_bytes(), columns)
        result = importer(
            rows,
            actor=Actor(actor_kind, actor_id, actor_label),
            progress=lambda done: _progress(run_id, done=done),
        )
    except Exception:
        db.session.rollback()
        _progress(run_id, status=ImportStatus.FAILED, finished_at=utcnow())
        raise
    run = run_by_id(run_id)
    run.status, run.finished_at, run.file_name = ImportStatus.DONE, utcnow(), None
    run.imported, run.merged, run.rejected = result.imported, result.merged, result.rejected
    run.errors = [list(error) for error in result.errors]
    run.done = run.total
    record(
        "import.finished",
        "import_run",
        run.id,
        actor=Actor(actor_kind, actor_id, actor_label),
        data={"imported": result.imported, "merged": result.merged, "rejected": result.rejected},
    )
    db.session.commit()
    path.unlink(missing_ok=True)
