"""Content-addressed file storage: a file lives at its SHA-256, under its tenant's folder.

Files are written before the transaction that records them commits; a rolled-back
upload leaves an unreferenced file, which is harmless (same bytes, same name) and can be
swept. A file is never overwritten or served from here directly.
"""

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from flask import Response, current_app, send_file

from crm.files.models import Attachment
from crm.files.sniff import ALLOWED, detect, text_encoding


@dataclass(frozen=True)
class StoredFile:
    sha256: str
    size: int
    content_type: str
    filename: str


class RefusedFile(ValueError):
    """The bytes are not a type we accept."""


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
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as handle:
            handle.write(content)
        os.replace(handle.name, path)
    return StoredFile(sha256, len(content), content_type, safe_filename(original_name, sha256, content_type))


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
