"""Content-addressed file storage: a file lives at its SHA-256, under its tenant's folder.

Files are written before the transaction that records them commits. A file this
transaction wrote is removed again if the transaction rolls back and nothing else
names those bytes, so no file outlives the request that failed to keep it. A folder that
cannot be written (full, read-only, gone) refuses the request with a clear message, and
the transaction with it: no ticket without its files. A file is never overwritten or
served from here directly.
"""

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from flask import Response, current_app, send_file
from flask_babel import lazy_gettext as _l
from sqlalchemy import event, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from crm.calls.models import CallRecord
from crm.errors import DomainError
from crm.extensions import at_outermost, db, pending_in_transaction
from crm.files.models import Attachment
from crm.files.sniff import ALLOWED, detect, text_encoding

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredFile:
    sha256: str
    size: int
    content_type: str
    filename: str


class RefusedFile(ValueError):
    """The bytes are not a type we accept."""


class StorageUnavailable(DomainError):
    """The upload folder cannot take the file: nothing of the request is kept."""

    status = 503


UNAVAILABLE = _l(
    "We could not store your files just now, so nothing was saved. Please try again in a few minutes."
)
NEW_FILES_KEY = "files_written"  # this transaction's new files, removed if it rolls back
# Files whose rows this transaction deleted (an erasure), removed once it commits.
FORGOTTEN_FILES_KEY = "files_forgotten"


def storage_root() -> Path:
    return Path(current_app.config.get("UPLOAD_FOLDER") or Path(current_app.instance_path) / "uploads")


def blob_path(tenant_id: int, sha256: str) -> Path:
    return storage_root() / str(tenant_id) / sha256[:2] / sha256


def safe_filename(name: str | None, sha256: str, content_type: str) -> str:
    """A display name: the uploaded stem without path or control characters, with the
    extension of the detected type."""
    stem = Path((name or "").replace("\\", "/")).stem
    stem = "".join(ch for ch in stem if ch.isprintable() and ch not in '/\\:*?"<>|').strip(" .")[:100]
    return f"{stem or sha256[:12]}.{ALLOWED[content_type]}"


def store(tenant_id: int, content: bytes, original_name: str | None) -> StoredFile:
    """Check ``content`` by its bytes and keep it under its digest."""
    content_type = detect(content)
    if content_type is None:
        raise RefusedFile(original_name or "")
    sha256 = hashlib.sha256(content).hexdigest()
    path = blob_path(tenant_id, sha256)
    if not path.exists():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as handle:
                written = Path(handle.name)
                handle.write(content)
            os.replace(written, path)
        except OSError:
            log.exception("the upload folder refused a file")
            if "written" in locals():
                written.unlink(missing_ok=True)
            raise StorageUnavailable(UNAVAILABLE, "attachments") from None
        pending_in_transaction(NEW_FILES_KEY).append((tenant_id, sha256))
    return StoredFile(sha256, len(content), content_type, safe_filename(original_name, sha256, content_type))


def store_recording(tenant_id: int, content: bytes, filename: str | None, *, max_bytes: int) -> StoredFile:
    """A call's recording: at most ``max_bytes``, and audio by its bytes (MP3, WAV, M4A),
    else refused beside the ``recording`` field."""
    if len(content) > max_bytes:
        raise DomainError(
            _l("%(name)s is larger than %(mb)d MB.", name=filename or "?", mb=max_bytes // 2**20), "recording"
        )
    try:
        stored = store(tenant_id, content, filename)
    except RefusedFile:
        stored = None
    if stored is None or not stored.content_type.startswith("audio/"):
        raise DomainError(_l("Attach the recording as MP3, WAV or M4A."), "recording")
    return stored


def install(session_class: type[Session]) -> None:
    """Keep this transaction's new files if it commits, remove them if not (idempotent)."""
    for name, listener in (
        ("after_commit", _keep_new_files),
        ("after_rollback", _remove_new_files),
        ("after_soft_rollback", _remove_new_files_soft),
    ):
        if not event.contains(session_class, name, listener):
            event.listen(session_class, name, listener)


def forget(tenant_id: int, sha256: str) -> None:
    """Remove these bytes once the transaction that deleted the rows naming them
    commits, unless another row still names them."""
    pending_in_transaction(FORGOTTEN_FILES_KEY).append((tenant_id, sha256))


@at_outermost
def _keep_new_files(session: Session) -> None:
    session.info.pop(NEW_FILES_KEY, None)
    _remove_unnamed(session.info.pop(FORGOTTEN_FILES_KEY, []))


@at_outermost
def _remove_new_files(session: Session) -> None:
    """A file written for a transaction that rolled back goes, unless another committed
    row names the same bytes (another request stored them meanwhile)."""
    session.info.pop(FORGOTTEN_FILES_KEY, None)
    _remove_unnamed(session.info.pop(NEW_FILES_KEY, []))


def _remove_unnamed(files: list[tuple[int, str]]) -> None:
    for tenant_id, sha256 in files:
        try:
            if not _named_elsewhere(tenant_id, sha256):
                blob_path(tenant_id, sha256).unlink(missing_ok=True)
        except (SQLAlchemyError, OSError):
            # The database (or the disk) is what failed: keeping an unnamed file is
            # harmless, failing the commit or rollback that already happened is not.
            log.exception("a file no row names was kept")


@at_outermost
def _remove_new_files_soft(session: Session, previous_transaction) -> None:
    _remove_new_files(session)


def _named_elsewhere(tenant_id: int, sha256: str) -> bool:
    naming = ((Attachment.__table__, "sha256"), (CallRecord.__table__, "recording_sha256"))
    with db.engine.connect() as connection:
        return any(
            connection.execute(
                select(1).where(table.c.tenant_id == tenant_id, table.c[column] == sha256).limit(1)
            ).first()
            for table, column in naming
        )


def send_attachment(attachment: Attachment) -> Response:
    """The file as a download of the type its bytes were found to be; text and mail carry
    the charset they are written in, so GB18030 is never read as UTF-8."""
    path = blob_path(attachment.tenant_id, attachment.sha256)
    response = send_file(
        path, mimetype=attachment.content_type, as_attachment=True, download_name=attachment.filename
    )
    if attachment.content_type in ("text/plain", "message/rfc822"):
        charset = text_encoding(path.read_bytes()) or "utf-8"
        response.headers["Content-Type"] = f"{attachment.content_type}; charset={charset}"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
