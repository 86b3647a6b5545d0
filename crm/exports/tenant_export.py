"""A tenant export: everything an inspection of the whole desk needs, as a folder that
``verify.py`` checks offline (docs/audit-format.md, "Bundles").

It streams: the chain, the cases and the attachments are read in batches and written as
they are read, so memory stays flat however many tickets there are."""

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from crm.audit import checkpoints
from crm.audit.chain import canonical_json, format_instant
from crm.audit.models import AuditCheckpoint, AuditEvent
from crm.audit.service import Actor, record
from crm.audit.signing import current_key
from crm.columns import utcnow
from crm.exports import versions
from crm.exports.bundle import EVENT_COLUMNS, TENANT_EXPORT, audit_rows, event_document, folder_at, zip_at
from crm.exports.case_file import case_documents
from crm.extensions import db
from crm.tickets.models import Ticket
from tenants import current_tenant

BATCH = 500


@dataclass(frozen=True)
class TenantExport:
    path: Path
    events: int
    cases: int
    files: int
    checkpoint: AuditCheckpoint


def ticket_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Ticket))


def _tickets_in_batches():
    last = 0
    while batch := list(
        db.session.scalars(select(Ticket).where(Ticket.id > last).order_by(Ticket.id).limit(BATCH))
    ):
        yield batch
        last = batch[-1].id
        db.session.expunge_all()  # keep memory flat: the batch is written


def write_tenant_export(
    path: Path, *, actor: Actor, progress: Callable[[int], None] = lambda done: None, as_zip: bool = False
) -> TenantExport:
    """Write the tenant's export to the folder ``path``, or a ZIP there (renamed into
    place when whole); ``progress`` is told how many more tickets were written. The
    checkpoint is committed at once; the caller commits the export's own event."""
    checkpoint, _ = checkpoints.write_checkpoint(actor=actor, force=True)
    tenant, tree_size = current_tenant(), checkpoint.tree_size
    # The checkpoint holds on its own: committed now, the long export that follows
    # holds no write lock (on SQLite, its progress is written beside it).
    db.session.commit()
    references: list[dict] = []
    with (zip_at if as_zip else folder_at)(path) as writer:
        events = writer.add_lines(
            "events.jsonl",
            (
                event_document(row)
                for row in audit_rows(*EVENT_COLUMNS, where=(AuditEvent.seq <= tree_size,), stream=True)
            ),
        )
        writer.add_lines(
            "checkpoints.jsonl",
            (
                checkpoints.document(row, tenant.slug)
                for row in db.session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.tree_size))
            ),
        )
        for file in [*versions.policy_files(), *versions.config_files()]:
            writer.add(file.path, file.content)
            if file.seq is not None and file.seq <= tree_size:
                references.append(file.reference)
        recorded = {}
        for seq, data in audit_rows(
            AuditEvent.seq,
            AuditEvent.data,
            where=(AuditEvent.action == "attachment.added", AuditEvent.seq <= tree_size),
            stream=True,
        ):
            recorded.setdefault(data.get("sha256"), seq)
        written: set[str] = set()
        cases = 0
        # The cases go to a temporary file first: a ZIP takes one file at a time, and
        # the attachments are written as their cases are read.
        with tempfile.TemporaryFile() as spool:
            for batch in _tickets_in_batches():
                for _, document, attachments in case_documents(batch):
                    spool.write(_line(document))
                    for attachment in attachments:
                        if attachment.sha256 not in written:
                            written.add(attachment.sha256)
                            references.extend(writer.add_attachment(tenant.id, attachment.sha256, recorded))
                cases += len(batch)
                progress(len(batch))
            spool.seek(0)
            with writer.open("cases.jsonl") as stream:
                shutil.copyfileobj(spool, stream, 1 << 20)
        manifest = writer.seal(
            current_key(),
            {
                "format": TENANT_EXPORT,
                "subject": f"tenant {tenant.slug}",
                "tenant": tenant.slug,
                "created_at": format_instant(utcnow()),
                "references": references,
            },
        )
    record(
        "export.created",
        "tenant",
        tenant.id,
        actor=actor,
        data={
            "kind": "tenant_export",
            "events": events,
            "cases": cases,
            "files": len(manifest["files"]),
            "tree_size": tree_size,
            "key_id": manifest["key_id"],
        },
    )
    return TenantExport(Path(path), events, cases, len(manifest["files"]), checkpoint)


def _line(document: dict) -> bytes:
    return canonical_json(document) + b"\n"
