"""Writing bundles as docs/audit-format.md lays them out: files listed with their
SHA-256 and size in a signed manifest, events as the verifier reads them, and nothing
under the final name until the whole bundle is written."""

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Protocol

from sqlalchemy import select

from crm.audit import verifier
from crm.audit.chain import canonical_json, event_body
from crm.audit.models import AuditEvent
from crm.extensions import db
from crm.files.storage import blob_path
from tenants import current_tenant_id

CASE_FILE, TENANT_EXPORT = verifier.CASE_FILE, verifier.TENANT_EXPORT
VERIFY_PY = Path(verifier.__file__)


class Signer(Protocol):
    """What a bundle needs of the signing key."""

    key_id: str

    def sign(self, message: bytes) -> str:
        """The base64 Ed25519 signature of ``message``."""

    def keys_document(self) -> bytes:
        """The public keys, as /.well-known/ledgerdesk-keys.json serves them."""


class BundleWriter:
    """Files added one by one (streamed, hashed as written) to a ZIP or a folder.
    ``seal`` writes keys.json, manifest.json and manifest.sig."""

    def __init__(self, target: zipfile.ZipFile | Path) -> None:
        self._target = target
        self.files: list[dict] = []

    @contextmanager
    def open(self, name: str, *, compress: bool = True) -> Iterator[IO[bytes]]:
        """A binary stream for ``name``; its digest and size are taken as it is written.
        Files already compressed (images, PDFs: attachments) are stored as they are."""
        if any(entry["path"] == name for entry in self.files):
            raise ValueError(f"{name} is already in the bundle")
        if isinstance(self._target, zipfile.ZipFile):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
            stream = self._target.open(info, "w", force_zip64=True)
        else:
            path = self._target / name
            path.parent.mkdir(parents=True, exist_ok=True)
            stream = path.open("wb")
        hashing = _Hashing(stream)
        with stream:
            yield hashing
        self.files.append({"path": name, "sha256": hashing.sha.hexdigest(), "size": hashing.size})

    def add(self, name: str, data: bytes) -> None:
        with self.open(name) as stream:
            stream.write(data)

    def add_lines(self, name: str, items: Iterable[dict]) -> int:
        """A JSON Lines file, one canonical object per line; returns how many."""
        count = 0
        with self.open(name) as stream:
            for item in items:
                stream.write(canonical_json(item) + b"\n")
                count += 1
        return count

    def add_attachment(self, tenant_id: int, sha256: str, recorded: dict[str, int]) -> list[dict]:
        """Copy a stored file's original bytes in, as they are (images and PDFs gain
        nothing from compressing again); the reference to the event that records its
        digest, if ``recorded`` (digest -> seq) has one."""
        name = f"attachments/{sha256}"
        with blob_path(tenant_id, sha256).open("rb") as source, self.open(name, compress=False) as target:
            shutil.copyfileobj(source, target, 1 << 20)
        return [{"path": name, "seq": recorded[sha256], "pointer": "/sha256"}] if sha256 in recorded else []

    def seal(self, signer: Signer, manifest: dict) -> dict:
        """Write keys.json, then the manifest of every file and its signature."""
        self.add("keys.json", signer.keys_document())
        if not any(entry["path"] == "verify.py" for entry in self.files):
            self.add("verify.py", VERIFY_PY.read_bytes())
        manifest = {**manifest, "key_id": signer.key_id, "files": sorted(self.files, key=lambda e: e["path"])}
        raw = canonical_json(manifest)
        self._write_raw("manifest.json", raw)
        self._write_raw("manifest.sig", signer.sign(verifier.MANIFEST_CONTEXT + raw).encode())
        return manifest

    def _write_raw(self, name: str, data: bytes) -> None:
        if isinstance(self._target, zipfile.ZipFile):
            self._target.writestr(name, data)
        else:
            (self._target / name).write_bytes(data)


class _Hashing:
    def __init__(self, stream: IO[bytes]) -> None:
        self._stream, self.sha, self.size = stream, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self._stream.write(data)


@contextmanager
def zip_at(path: Path) -> Iterator[BundleWriter]:
    """A ZIP bundle written beside ``path`` and renamed onto it only once complete: an
    export interrupted half-way leaves no file under the final name."""
    path = Path(path)
    handle, partial = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(handle)
    try:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            yield BundleWriter(archive)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


@contextmanager
def folder_at(path: Path) -> Iterator[BundleWriter]:
    """A folder bundle written as ``<path>.partial`` and renamed once complete."""
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} already exists")
    partial = path.with_name(path.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        yield BundleWriter(partial)
        partial.rename(path)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


# --- events as bundles carry them ---------------------------------------------------------

EVENT_COLUMNS = (
    AuditEvent.tenant_id,
    AuditEvent.seq,
    AuditEvent.occurred_at,
    AuditEvent.actor_kind,
    AuditEvent.actor_id,
    AuditEvent.actor_label,
    AuditEvent.ip,
    AuditEvent.action,
    AuditEvent.subject_type,
    AuditEvent.subject_id,
    AuditEvent.data,
    AuditEvent.prev_hash,
    AuditEvent.chained_at,
    AuditEvent.hash,
)


def event_document(row) -> dict:
    """An event as the verifier reads it: its hashed body and its hash."""
    body = event_body(
        tenant_id=row.tenant_id,
        seq=row.seq,
        occurred_at=row.occurred_at,
        actor_kind=row.actor_kind,
        actor_id=row.actor_id,
        actor_label=row.actor_label,
        ip=row.ip,
        action=row.action,
        subject_type=row.subject_type,
        subject_id=row.subject_id,
        data=row.data,
        prev_hash=row.prev_hash,
        chained_at=row.chained_at,
    )
    return {**body, "hash": row.hash}


def audit_rows(*columns, where=(), stream: bool = False):
    """Audit event columns of the tenant in context, in ``seq`` order, read on the
    session's connection past the ORM: an auditor's scope hides other tickets' events
    from ORM reads, and a bundle must still hold the events of its own case (its
    customer, its mail, its policy versions) and the hashes every proof needs."""
    query = (
        select(*columns).where(AuditEvent.tenant_id == current_tenant_id(), *where).order_by(AuditEvent.seq)
    )
    if stream:
        query = query.execution_options(yield_per=5000)
    return db.session.connection().execute(query)


def dumps(value) -> bytes:
    """A JSON file for people and programs: indented, UTF-8, keys in order."""
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True).encode() + b"\n"
