"""A second verifier of case files, written from docs/audit-format.md alone, as a
regulator's expert would write one: zipfile, hashlib, json and cryptography, nothing
of Ledgerdesk's. It checks a case file the app exported, so the page, the exporter and
verify.py are held to one another; the Merkle tree is RFC 9162's recursive definition,
not the verifier's iterative walk."""

import base64
import hashlib
import json
import zipfile

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select

from crm.audit.models import AuditEvent
from crm.tickets import service as tickets
from tests.conftest import acting_for, unique
from tests.test_portal import PNG
from tests.test_ticket_service import refund_request


def canonical(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 2.1.1: the Merkle Tree Hash of a list of leaf data."""
    if not leaves:
        return sha(b"")
    if len(leaves) == 1:
        return sha(b"\x00" + leaves[0])
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return sha(b"\x01" + mth(leaves[:k]) + mth(leaves[k:]))


def path(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 9162 2.1.3.1: PATH(m, D[n])."""
    if len(leaves) == 1:
        return []
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    if m < k:
        return [*path(m, leaves[:k]), mth(leaves[k:])]
    return [*path(m - k, leaves[k:]), mth(leaves[:k])]


def verify_case_file(bundle, chain_hashes: list[str]) -> int:
    """Every check the page lists for a case file; ``chain_hashes`` are the tenant's
    event hashes as the inspector obtained them (here from the database) to rebuild the
    tree. Returns how many events were proved."""
    with zipfile.ZipFile(bundle) as archive:
        raw = archive.read("manifest.json")
        manifest = json.loads(raw)
        keys = {
            key["key_id"]: base64.b64decode(key["public_key"])
            for key in json.loads(archive.read("keys.json"))["keys"]
        }
        for key_id, public in keys.items():
            assert hashlib.sha256(public).hexdigest()[:16] == key_id
        signer = Ed25519PublicKey.from_public_bytes(keys[manifest["key_id"]])
        signer.verify(base64.b64decode(archive.read("manifest.sig")), b"ledgerdesk manifest v1\n" + raw)
        listed = {entry["path"]: entry for entry in manifest["files"]}
        assert set(archive.namelist()) == set(listed) | {"manifest.json", "manifest.sig"}
        for name, entry in listed.items():
            data = archive.read(name)
            assert (hashlib.sha256(data).hexdigest(), len(data)) == (entry["sha256"], entry["size"]), name

        checkpoint = json.loads(archive.read("checkpoint.json"))
        assert checkpoint == manifest["checkpoint"]
        fields = {name: value for name, value in checkpoint.items() if name != "signature"}
        assert sorted(fields) == ["head_hash", "key_id", "root", "tenant", "tenant_id", "time", "tree_size"]
        Ed25519PublicKey.from_public_bytes(keys[checkpoint["key_id"]]).verify(
            base64.b64decode(checkpoint["signature"]), b"ledgerdesk checkpoint v1\n" + canonical(fields)
        )
        size = checkpoint["tree_size"]
        leaves = [bytes.fromhex(h) for h in chain_hashes[:size]]
        assert mth(leaves).hex() == checkpoint["root"]
        assert chain_hashes[size - 1] == checkpoint["head_hash"]

        events = {}
        for line in archive.read("events.jsonl").splitlines():
            item = json.loads(line)
            event = item["event"]
            body = {name: value for name, value in event.items() if name != "hash"}
            digest = hashlib.sha256(body["prev_hash"].encode("ascii") + canonical(body)).hexdigest()
            assert digest == event["hash"], event["seq"]
            assert [node.hex() for node in path(event["seq"] - 1, leaves)] == item["proof"], event["seq"]
            events[event["seq"]] = event

        for reference in manifest["references"]:
            value = events[reference["seq"]]["data"]
            for token in reference["pointer"].split("/")[1:]:
                value = value[token]
            assert value == listed[reference["path"]]["sha256"], reference
    return len(events)


def test_a_case_file_the_app_exports_passes_the_independent_verifier(app, runner, make_tenant, tmp_path):
    tenant = make_tenant()
    request = refund_request(uploads=[tickets.Upload("账单.png", PNG)])
    with acting_for(app, tenant) as session:
        number = tickets.submit_refund_request(request, nonce=unique("n"), ip=None).ticket.number
        session.commit()
    first = runner.invoke(
        args=["export", "case", "--tenant", tenant.slug, str(number), "-o", str(tmp_path / "a.zip")]
    )
    assert first.exit_code == 0, first.output
    bundle = tmp_path / "b.zip"  # a second export: with an earlier checkpoint behind it
    assert (
        runner.invoke(
            args=["export", "case", "--tenant", tenant.slug, str(number), "-o", str(bundle)]
        ).exit_code
        == 0
    )
    with acting_for(app, tenant) as session:
        hashes = list(session.scalars(select(AuditEvent.hash).order_by(AuditEvent.seq)))
    assert verify_case_file(bundle, hashes) >= 5

    # The same verifier refuses the file with one byte of case.json changed.
    tampered = tmp_path / "c.zip"
    with zipfile.ZipFile(bundle) as source, zipfile.ZipFile(tampered, "w") as target:
        for name in source.namelist():
            data = source.read(name)
            target.writestr(name, data.replace(b'"format"', b'"Format"', 1) if name == "case.json" else data)
    with pytest.raises(AssertionError, match=r"case\.json"):
        verify_case_file(tampered, hashes)
