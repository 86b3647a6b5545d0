"""The standalone verifier against bundles laid out as docs/audit-format.md writes them:
honest ones pass, and each tampering the issue names fails with its own reason.

The bundles here are written by the test from the documented layout (events hashed
with ``crm.audit.chain``, trees from ``crm.audit.merkle``), so the verifier is checked
against the page, not against the exporter that will write them; the verifier runs as
a copy of its single file, in a folder where nothing of Ledgerdesk can be imported."""

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from crm.audit import verifier
from crm.audit.chain import GENESIS_HASH, canonical_json, event_body, event_hash
from crm.audit.merkle import MerkleTree

VERIFIER = Path(verifier.__file__)
EVIDENCE = b"\x89PNG\r\n\x1a\n a bank transfer receipt"
OTHER = b"\x89PNG\r\n\x1a\n someone else's receipt"
CASE_SEQS = (3, 4, 5, 9)  # the events about the case among the tenant's 12


class Key:
    def __init__(self) -> None:
        self.private = Ed25519PrivateKey.generate()
        raw = self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.public_b64, self.id = base64.b64encode(raw).decode(), verifier.key_id(raw)

    def sign(self, message: bytes) -> str:
        return base64.b64encode(self.private.sign(message)).decode()

    def keys_document(self) -> bytes:
        entry = {"algorithm": "Ed25519", "current": True, "key_id": self.id, "public_key": self.public_b64}
        return json.dumps({"keys": [entry]}).encode()


def make_chain(count: int, rewrite: int | None = None) -> list[dict]:
    """A tenant's events 1..count; event 4 records the receipt's digest. ``rewrite``
    changes one event's data and rehashes everything after it, as a forger would."""
    start = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    events, prev = [], GENESIS_HASH
    for seq in range(1, count + 1):
        data = {"ticket_id": 42, "step": seq}
        if seq == 4:
            data = {"ticket_id": 42, "sha256": hashlib.sha256(EVIDENCE).hexdigest(), "name_sha256": "ab" * 32}
        if seq == rewrite:
            data = {"ticket_id": 42, "step": 0}
        at = start + timedelta(minutes=seq)
        body = event_body(
            tenant_id=7,
            seq=seq,
            occurred_at=at,
            actor_kind="user",
            actor_id="3",
            actor_label="agent@acme.test",
            ip="203.0.113.9",
            action="ticket.replied" if seq != 4 else "ticket.attachment_added",
            subject_type="ticket",
            subject_id="42",
            data=data,
            prev_hash=prev,
            chained_at=at + timedelta(milliseconds=3),
        )
        prev = event_hash(prev, body)
        events.append({**body, "hash": prev})
    return events


def checkpoint(key: Key, events: list[dict], size: int) -> dict:
    tree = MerkleTree(event["hash"] for event in events[:size])
    document = {
        "head_hash": events[size - 1]["hash"],
        "key_id": key.id,
        "root": tree.root(),
        "tenant": "acme",
        "tenant_id": 7,
        "time": f"2026-11-02T{10 + size // 10}:{size % 10}0:00.000000Z",
        "tree_size": size,
    }
    return {**document, "signature": key.sign(verifier.checkpoint_message(document))}


@dataclass
class Written:
    """A bundle's files before packing; ``seal`` lists and signs them as the manifest says."""

    format: str
    files: dict[str, bytes]
    references: list[dict] = field(default_factory=list)
    checkpoint: dict | None = None

    def seal(self, key: Key, keys_document: bytes | None = None) -> dict[str, bytes]:
        files = {**self.files, "keys.json": keys_document or key.keys_document()}
        manifest = {
            "format": self.format,
            "subject": "tenant acme, ticket RF-1042",
            "key_id": key.id,
            "files": [
                {"path": name, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
                for name, data in sorted(files.items())
            ],
            "references": self.references,
        }
        if self.checkpoint is not None:
            manifest["checkpoint"] = self.checkpoint
        raw = canonical_json(manifest)
        return {
            **files,
            "manifest.json": raw,
            "manifest.sig": key.sign(verifier.MANIFEST_CONTEXT + raw).encode(),
        }


def lines(items) -> bytes:
    return b"".join(canonical_json(item) + b"\n" for item in items)


def case_file(key: Key, events: list[dict], size: int, *, earlier: tuple[int, ...] = ()) -> Written:
    cp = checkpoint(key, events, size)
    tree = MerkleTree(event["hash"] for event in events[:size])
    digest = hashlib.sha256(EVIDENCE).hexdigest()
    files = {
        "case.json": json.dumps({"reference": "RF-1042"}).encode(),
        "checkpoint.json": canonical_json(cp),
        "events.jsonl": lines(
            {"event": events[seq - 1], "proof": tree.inclusion_proof(seq - 1, size)} for seq in CASE_SEQS
        ),
        f"attachments/{digest}": EVIDENCE,
        "timeline.html": b"<!doctype html><title>RF-1042</title>",
        "verify.py": VERIFIER.read_bytes(),
    }
    if earlier:
        files["consistency.jsonl"] = lines(
            {"tree_size": old, "proof": tree.consistency_proof(old, size)} for old in earlier
        )
    references = [{"path": f"attachments/{digest}", "seq": 4, "pointer": "/sha256"}]
    return Written(verifier.CASE_FILE, files, references, cp)


def tenant_export(key: Key, events: list[dict], sizes: tuple[int, ...]) -> Written:
    digest = hashlib.sha256(EVIDENCE).hexdigest()
    files = {
        "events.jsonl": lines(events),
        "checkpoints.jsonl": lines(checkpoint(key, events, size) for size in sizes),
        f"attachments/{digest}": EVIDENCE,
        "verify.py": VERIFIER.read_bytes(),
    }
    references = [{"path": f"attachments/{digest}", "seq": 4, "pointer": "/sha256"}]
    return Written(verifier.TENANT_EXPORT, files, references)


def pack_zip(files: dict[str, bytes], path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def pack_folder(files: dict[str, bytes], path: Path) -> Path:
    for name, data in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(data)
    return path


@pytest.fixture
def run(tmp_path):
    """Runs a copy of verify.py, alone in a folder, as an inspector would."""
    alone = tmp_path / "inspector"
    alone.mkdir()
    shutil.copy(VERIFIER, alone / "verify.py")

    def run(bundle: Path, *options: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-I", "verify.py", str(bundle), *options],
            cwd=alone,
            capture_output=True,
            text=True,
            timeout=60,
        )

    return run


@pytest.fixture
def key() -> Key:
    return Key()


def failure(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    return result.stdout.strip().splitlines()[-1]


# --- honest bundles -----------------------------------------------------------------------------


def test_an_honest_case_file_verifies(run, key, tmp_path):
    events = make_chain(12)
    bundle = pack_zip(case_file(key, events, 12).seal(key), tmp_path / "RF-1042.zip")
    result = run(bundle)
    assert result.returncode == 0, result.stdout + result.stderr
    root = MerkleTree(event["hash"] for event in events).root()
    assert result.stdout.splitlines() == [
        "Ledgerdesk case file: tenant acme, ticket RF-1042",
        f"manifest: signed by key {key.id} (the bundle's keys.json: compare its id with the keys the "
        "provider publishes)",
        "files: 7, each with the SHA-256 and size the manifest lists",
        f"checkpoints: 1 signed; the last covers 12 events, root {root}, at 2026-11-02T11:20:00.000000Z",
        "events: 4, each hashed and proved to be in the checkpoint's tree",
        "files named by events: 1, each with the digest its event records",
        "OK: everything above holds",
    ]


def test_an_honest_tenant_export_verifies_with_the_published_keys(run, key, tmp_path):
    bundle = pack_folder(tenant_export(key, make_chain(12), (5, 10, 12)).seal(key), tmp_path / "export")
    keys = tmp_path / "ledgerdesk-keys.json"
    keys.write_bytes(key.keys_document())
    result = run(bundle, "--keys", str(keys))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"manifest: signed by key {key.id} (a key you gave)" in result.stdout
    assert "chain: 12 events from 1, each hashed and linked; every checkpoint's root holds" in result.stdout
    assert "checkpoints: 3 signed; the last covers 12 events" in result.stdout


def test_a_case_file_consistent_with_a_checkpoint_a_witness_holds_verifies(run, key, tmp_path):
    events = make_chain(12)
    held = tmp_path / "mailed.json"
    held.write_bytes(canonical_json(checkpoint(key, events, 5)))
    bundle = pack_zip(case_file(key, events, 12, earlier=(5,)).seal(key), tmp_path / "case.zip")
    result = run(bundle, "--checkpoint", str(held))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "checkpoints you hold: 1, each consistent with the bundle's" in result.stdout


# --- tampering ---------------------------------------------------------------------------------

CASE_FILES = sorted(case_file(Key(), make_chain(12), 12).seal(Key()))


@pytest.mark.parametrize("name", CASE_FILES)
def test_a_changed_byte_in_any_file_is_found(run, key, tmp_path, name):
    files = case_file(key, make_chain(12), 12).seal(key)
    data = bytearray(files[name])
    data[len(data) // 2] ^= 0x01
    files[name] = bytes(data)
    line = failure(run(pack_zip(files, tmp_path / "case.zip")))
    if name == "manifest.json":
        assert line in (
            "FAILED: manifest.sig: the signature does not hold",
            "FAILED: manifest.json: not JSON",
        )
    elif name == "keys.json":
        assert line.startswith("FAILED: keys.json: ")
    else:
        assert line.startswith(f"FAILED: {name}: "), line


def test_a_removed_event_is_found_by_the_manifest_and_by_the_chain(run, key, tmp_path):
    written = case_file(key, make_chain(12), 12)
    kept = written.files["events.jsonl"].splitlines(keepends=True)
    files = written.seal(key)
    files["events.jsonl"] = b"".join(kept[:1] + kept[2:])
    assert failure(run(pack_zip(files, tmp_path / "case.zip"))) == (
        "FAILED: events.jsonl: SHA-256 or size does not match the manifest"
    )
    # The provider itself, holding the key, re-signs an export without event 6.
    events = make_chain(12)
    export = tenant_export(key, events, (12,))
    export.files["events.jsonl"] = lines(events[:5] + events[6:])
    assert failure(run(pack_folder(export.seal(key), tmp_path / "export"))) == "FAILED: event 6 is missing"


def test_reordered_events_are_found(run, key, tmp_path):
    events = make_chain(12)
    written = case_file(key, events, 12)
    entries = written.files["events.jsonl"].splitlines(keepends=True)
    written.files["events.jsonl"] = b"".join([entries[1], entries[0], *entries[2:]])
    assert failure(run(pack_zip(written.seal(key), tmp_path / "case.zip"))) == (
        "FAILED: event 3: out of order after event 4"
    )
    export = tenant_export(key, events, (12,))
    export.files["events.jsonl"] = lines([*events[:3], events[4], events[3], *events[5:]])
    assert failure(run(pack_folder(export.seal(key), tmp_path / "export"))) == "FAILED: event 4 is missing"


def test_an_event_rewritten_without_its_hash_is_found(run, key, tmp_path):
    events = make_chain(12)
    written = case_file(key, events, 12)
    entries = [json.loads(line) for line in written.files["events.jsonl"].splitlines()]
    entries[2]["event"]["data"]["step"] = 99
    written.files["events.jsonl"] = lines(entries)
    assert failure(run(pack_zip(written.seal(key), tmp_path / "case.zip"))) == (
        "FAILED: event 5: content does not match its hash"
    )


def test_a_swapped_attachment_is_found(run, key, tmp_path):
    written = case_file(key, make_chain(12), 12)
    name = next(name for name in written.files if name.startswith("attachments/"))
    written.files[name] = OTHER  # listed in a re-signed manifest with its new digest
    line = failure(run(pack_zip(written.seal(key), tmp_path / "case.zip")))
    assert line == (
        f"FAILED: {name}: event 4 records SHA-256 {hashlib.sha256(EVIDENCE).hexdigest()}, "
        f"the file has {hashlib.sha256(OTHER).hexdigest()}"
    )


def test_a_forged_checkpoint_is_found(run, key, tmp_path):
    events = make_chain(12)
    written = tenant_export(key, events, (12,))
    forged = checkpoint(key, events, 12)
    forged["root"] = "00" * 32  # the signature no longer covers what it says
    written.files["checkpoints.jsonl"] = lines([forged])
    assert failure(run(pack_folder(written.seal(key), tmp_path / "export"))) == (
        "FAILED: checkpoint at tree size 12: the signature does not hold"
    )


def test_a_checkpoint_signed_by_an_unknown_key_is_found(run, key, tmp_path):
    events, stranger = make_chain(12), Key()
    written = tenant_export(key, events, (12,))
    written.files["checkpoints.jsonl"] = lines([checkpoint(stranger, events, 12)])
    assert failure(run(pack_folder(written.seal(key), tmp_path / "export"))) == (
        f"FAILED: checkpoint at tree size 12: signed by an unknown key {stranger.id}"
    )
    # A whole bundle made with another key passes on its own keys.json, so the report
    # names the key; given the provider's published keys, it fails.
    bundle = pack_zip(case_file(stranger, events, 12).seal(stranger), tmp_path / "case.zip")
    assert f"signed by key {stranger.id}" in run(bundle).stdout
    published = tmp_path / "ledgerdesk-keys.json"
    published.write_bytes(key.keys_document())
    assert failure(run(bundle, "--keys", str(published))) == (
        f"FAILED: manifest.sig: signed by an unknown key {stranger.id}"
    )


def test_a_cut_tail_is_found_against_a_later_checkpoint(run, key, tmp_path):
    events = make_chain(12)
    written = tenant_export(key, events, (5, 10))
    written.files["events.jsonl"] = lines(events[:8])
    assert failure(run(pack_folder(written.seal(key), tmp_path / "export"))) == (
        "FAILED: checkpoint at tree size 10 (2026-11-02T11:00:00.000000Z) covers more than the 8 events "
        "in the chain: the chain was cut"
    )
    # The same cut, the export's checkpoints cut with it, against the one a witness got.
    written = tenant_export(key, events[:8], (5, 8))
    held = tmp_path / "mailed.json"
    held.write_bytes(canonical_json(checkpoint(key, events, 10)))
    assert failure(run(pack_folder(written.seal(key), tmp_path / "export2"), "--checkpoint", str(held))) == (
        "FAILED: checkpoint at tree size 10 (2026-11-02T11:00:00.000000Z) covers more than the 8 events "
        "in the chain: the chain was cut"
    )


def test_a_consistently_rewritten_chain_is_found_against_an_older_mailed_checkpoint(run, key, tmp_path):
    """The provider rewrites event 3 and everything after it, and signs new checkpoints
    with its real key: the export alone verifies, the mailed checkpoint does not."""
    honest, rewritten = make_chain(12), make_chain(12, rewrite=3)
    held = tmp_path / "mailed.json"
    held.write_bytes(canonical_json(checkpoint(key, honest, 5)))
    export = pack_folder(tenant_export(key, rewritten, (5, 12)).seal(key), tmp_path / "export")
    assert run(export).returncode == 0
    assert failure(run(export, "--checkpoint", str(held))) == (
        "FAILED: checkpoint at tree size 5 (2026-11-02T10:50:00.000000Z): its root does not match the chain: "
        "the chain was rewritten after it"
    )
    case = pack_zip(case_file(key, rewritten, 12, earlier=(5,)).seal(key), tmp_path / "case.zip")
    assert failure(run(case, "--checkpoint", str(held))) == (
        "FAILED: the checkpoint you hold (tree size 5) is not consistent with this bundle's: "
        "the chain was rewritten after it"
    )


def test_an_event_chained_earlier_than_the_one_before_it_is_found(run, key, tmp_path):
    events = make_chain(12)
    late = dict(events[6])
    late["chained_at"] = "2026-11-01T00:00:00.000000Z"
    rebuilt, prev = [], GENESIS_HASH
    for event in [*events[:6], late, *events[7:]]:
        body = {name: value for name, value in event.items() if name != "hash"}
        body["prev_hash"] = prev
        prev = event_hash(prev, body)
        rebuilt.append({**body, "hash": prev})
    export = pack_folder(tenant_export(key, rebuilt, (12,)).seal(key), tmp_path / "export")
    assert failure(run(export)) == "FAILED: event 7: chained earlier than the event before it"


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("events.jsonl", b"{not json\n", "FAILED: events.jsonl line 1: not JSON"),
        ("events.jsonl", b'{"seq": 1}\n', "FAILED: event 1: not an event of the documented shape"),
        ("../escape", b"x", "FAILED: manifest.json: a file listed as '../escape'"),
    ],
)
def test_malformed_bundles_fail_with_a_reason_not_a_traceback(run, key, tmp_path, name, content, expected):
    written = tenant_export(key, make_chain(3), (3,))
    written.files[name] = content
    files = written.seal(key)
    if name.startswith(".."):
        assert failure(run(pack_zip(files, tmp_path / "bad.zip"))) == expected
    else:
        assert failure(run(pack_folder(files, tmp_path / "bad"))) == expected


def test_a_missing_path_or_a_file_that_is_not_a_bundle_fails_cleanly(run, tmp_path):
    assert failure(run(tmp_path / "nothing-here")).startswith("FAILED: ")
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"PK\x03\x04 not really")
    assert failure(run(junk)).startswith("FAILED: cannot read it")
