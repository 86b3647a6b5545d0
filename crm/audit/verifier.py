"""The standalone verifier of Ledgerdesk audit evidence.

This file imports nothing from Ledgerdesk: it needs Python's standard library and, for
signatures, ``cryptography``. It is shipped inside every case file and tenant export as
``verify.py`` and installed as the ``ledgerdesk-verify`` command, so an inspector can
check what they were sent on their own machine without trusting the provider.
``docs/audit-format.md`` writes down every format it checks."""

import argparse
import base64
import hashlib
import json
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

# RFC 9162, section 2.1.1: the hash of an empty tree, of a leaf and of an inner node.
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: list[bytes]) -> bytes | None:
    """The root that ``proof`` leads to from leaf ``index`` of a tree of ``size``
    (RFC 9162, 2.1.3.2), or None when the proof cannot belong to such a tree."""
    if not 0 <= index < size:
        return None
    fn, sn, r = index, size - 1, leaf_hash(leaf)
    for p in proof:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return r if sn == 0 else None


def consistent(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: list[bytes]) -> bool:
    """Whether ``proof`` shows the tree of ``old_size`` with ``old_root`` to be a prefix
    of the tree of ``new_size`` with ``new_root`` (RFC 9162, 2.1.4.2)."""
    if not 0 <= old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof
    if not proof:
        return False
    if old_size & (old_size - 1) == 0:
        proof = [old_root, *proof]
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == old_root and sr == new_root and sn == 0


# What a checkpoint's signature covers: this prefix, then the canonical JSON of the
# checkpoint without its "signature" member (sorted keys, no whitespace, UTF-8).
CHECKPOINT_CONTEXT = b"ledgerdesk checkpoint v1\n"
CHECKPOINT_FIELDS = ("head_hash", "key_id", "root", "tenant", "tenant_id", "time", "tree_size")


def canonical_json(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def checkpoint_message(checkpoint: dict) -> bytes:
    """The bytes a checkpoint's Ed25519 signature is made over."""
    return CHECKPOINT_CONTEXT + canonical_json({name: checkpoint[name] for name in CHECKPOINT_FIELDS})


def key_id(public_key: bytes) -> str:
    """A key's id: the first 16 hex digits of SHA-256 of its 32 raw public-key bytes."""
    return hashlib.sha256(public_key).hexdigest()[:16]


def signature_holds(public_key_b64: str, message: bytes, signature_b64: str) -> bool:
    """Whether ``signature_b64`` is the Ed25519 signature of ``message`` by the key."""
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64, validate=True))
        key.verify(base64.b64decode(signature_b64, validate=True), message)
    except (InvalidSignature, ValueError):
        return False
    return True


# --- events ------------------------------------------------------------------------------

GENESIS_HASH = "0" * 64
EVENT_FIELDS = {"action", "actor", "data", "ip", "occurred_at", "prev_hash", "seq", "subject", "tenant_id"}


def event_hash(body: dict) -> str:
    """SHA-256 of the previous hash's 64 ASCII hex digits, then the body's canonical JSON."""
    return hashlib.sha256(body["prev_hash"].encode("ascii") + canonical_json(body)).hexdigest()


def check_event(event: dict) -> str:
    """The event's hash after checking its shape; raises Failure when it does not hold."""
    body = {name: value for name, value in event.items() if name != "hash"}
    seq = body.get("seq")
    keys = set(body) - {"chained_at"}
    if keys != EVENT_FIELDS or not isinstance(seq, int) or not isinstance(body["data"], dict):
        raise Failure(f"event {seq}: not an event of the documented shape")
    if event_hash(body) != event.get("hash"):
        raise Failure(f"event {seq}: content does not match its hash")
    return event["hash"]


# --- bundles ------------------------------------------------------------------------------

# What a manifest's signature covers: this prefix, then manifest.json's bytes as stored.
MANIFEST_CONTEXT = b"ledgerdesk manifest v1\n"
CASE_FILE, TENANT_EXPORT = "ledgerdesk-case-file/1", "ledgerdesk-tenant-export/1"
SIGNED_FILES = {"manifest.json", "manifest.sig"}


class Failure(Exception):
    """The first thing found that does not hold; its text is the report's last line."""


class Bundle:
    """A case file's ZIP or a tenant export's folder, read file by file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip = zipfile.ZipFile(path) if path.is_file() else None
        if self._zip is not None:
            names = [info.filename for info in self._zip.infolist() if not info.is_dir()]
        elif path.is_dir():
            names = [item.relative_to(path).as_posix() for item in sorted(path.rglob("*")) if item.is_file()]
        else:
            raise Failure(f"{path}: no such file or folder")
        if len(set(names)) != len(names):
            raise Failure("the bundle holds two files under one name")
        self.names = set(names)

    def open(self, name: str):
        if name not in self.names:
            raise Failure(f"{name}: missing from the bundle")
        return self._zip.open(name) if self._zip is not None else (self.path / name).open("rb")

    def read(self, name: str) -> bytes:
        with self.open(name) as stream:
            return stream.read()

    def json(self, name: str):
        try:
            return json.loads(self.read(name))
        except ValueError as error:
            raise Failure(f"{name}: not JSON ({error})") from None

    def lines(self, name: str) -> Iterator[tuple[int, dict]]:
        with self.open(name) as stream:
            for number, line in enumerate(stream, 1):
                try:
                    yield number, json.loads(line)
                except ValueError:
                    raise Failure(f"{name} line {number}: not JSON") from None

    def digest(self, name: str) -> tuple[str, int]:
        sha, size = hashlib.sha256(), 0
        with self.open(name) as stream:
            while chunk := stream.read(1 << 20):
                sha.update(chunk)
                size += len(chunk)
        return sha.hexdigest(), size


def load_keys(document: dict, source: str) -> dict[str, str]:
    """key id -> base64 public key, from a keys document as /.well-known/ledgerdesk-keys.json
    serves it; each id must be the one its key gives."""
    keys = {}
    for entry in document.get("keys", []) if isinstance(document, dict) else []:
        try:
            raw = base64.b64decode(entry["public_key"], validate=True)
        except (KeyError, TypeError, ValueError):
            raise Failure(f"{source}: a key is not base64") from None
        if entry.get("algorithm") != "Ed25519" or len(raw) != 32 or key_id(raw) != entry.get("key_id"):
            raise Failure(f"{source}: key {entry.get('key_id')} does not match its id")
        keys[entry["key_id"]] = entry["public_key"]
    if not keys:
        raise Failure(f"{source}: no keys")
    return keys


def check_checkpoint(checkpoint: dict, keys: dict[str, str], what: str) -> None:
    if not isinstance(checkpoint, dict) or any(
        name not in checkpoint for name in (*CHECKPOINT_FIELDS, "signature")
    ):
        raise Failure(f"{what}: not a checkpoint")
    if checkpoint["key_id"] not in keys:
        raise Failure(f"{what}: signed by an unknown key {checkpoint['key_id']}")
    if not signature_holds(
        keys[checkpoint["key_id"]], checkpoint_message(checkpoint), checkpoint["signature"]
    ):
        raise Failure(f"{what}: the signature does not hold")


def resolve(data, pointer: str):
    """The value at a JSON Pointer (RFC 6901) inside ``data``, or None."""
    for token in pointer.split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(data, dict):
            data = data.get(token)
        elif isinstance(data, list) and token.isdigit() and int(token) < len(data):
            data = data[int(token)]
        else:
            return None
    return data


class Verification:
    """Checks a bundle in the order docs/audit-format.md gives, collecting the report."""

    def __init__(self, bundle: Bundle, trusted: dict[str, str] | None, held: list[dict]) -> None:
        self.bundle, self.trusted, self.held, self.report = bundle, trusted, held, []

    def run(self) -> list[str]:
        manifest = self.manifest()
        digests = self.files(manifest)
        checkpoints = self.checkpoints(manifest)
        events = self.events(manifest, checkpoints)
        self.references(manifest, digests, events)
        return self.report

    def manifest(self) -> dict:
        raw = self.bundle.read("manifest.json")
        try:
            manifest = json.loads(raw)
        except ValueError:
            raise Failure("manifest.json: not JSON") from None
        if manifest.get("format") not in (CASE_FILE, TENANT_EXPORT):
            raise Failure(f"manifest.json: unknown format {manifest.get('format')!r}")
        bundled = load_keys(self.bundle.json("keys.json"), "keys.json")
        self.keys = self.trusted or bundled
        signer = manifest.get("key_id")
        if signer not in self.keys:
            raise Failure(f"manifest.sig: signed by an unknown key {signer}")
        signature = self.bundle.read("manifest.sig").decode("ascii", "replace").strip()
        if not signature_holds(self.keys[signer], MANIFEST_CONTEXT + raw, signature):
            raise Failure("manifest.sig: the signature does not hold")
        kind = "case file" if manifest["format"] == CASE_FILE else "tenant export"
        self.report.append(f"Ledgerdesk {kind}: {manifest.get('subject', '')}".rstrip(": "))
        source = (
            "a key you gave"
            if self.trusted
            else "the bundle's keys.json: compare its id with the keys the provider publishes"
        )
        self.report.append(f"manifest: signed by key {signer} ({source})")
        return manifest

    def files(self, manifest: dict) -> dict[str, str]:
        digests = {}
        for entry in manifest.get("files", []):
            name = entry.get("path", "")
            parts = PurePosixPath(name).parts
            if not name or name.startswith("/") or ".." in parts or name in SIGNED_FILES or name in digests:
                raise Failure(f"manifest.json: a file listed as {name!r}")
            sha, size = self.bundle.digest(name)
            if (sha, size) != (entry.get("sha256"), entry.get("size")):
                raise Failure(f"{name}: SHA-256 or size does not match the manifest")
            digests[name] = sha
        unlisted = sorted(self.bundle.names - digests.keys() - SIGNED_FILES)
        if unlisted:
            raise Failure(f"{unlisted[0]}: in the bundle but not in the manifest")
        self.report.append(f"files: {len(digests)}, each with the SHA-256 and size the manifest lists")
        return digests

    def checkpoints(self, manifest: dict) -> list[dict]:
        if manifest["format"] == CASE_FILE:
            checkpoint = self.bundle.json("checkpoint.json")
            if checkpoint != manifest.get("checkpoint"):
                raise Failure("checkpoint.json: not the checkpoint the manifest names")
            checkpoints = [checkpoint]
        else:
            checkpoints = [entry for _, entry in self.bundle.lines("checkpoints.jsonl")]
        for checkpoint in checkpoints:
            check_checkpoint(checkpoint, self.keys, f"checkpoint at tree size {checkpoint.get('tree_size')}")
        for index, checkpoint in enumerate(self.held):
            check_checkpoint(checkpoint, self.keys, f"the checkpoint you hold ({index + 1})")
        if not checkpoints:
            raise Failure("no checkpoint in the bundle")
        last = checkpoints[-1]
        self.report.append(
            f"checkpoints: {len(checkpoints)} signed; the last covers {last['tree_size']} events, "
            f"root {last['root']}, at {last['time']}"
        )
        return checkpoints

    def events(self, manifest: dict, checkpoints: list[dict]) -> dict[int, dict]:
        if manifest["format"] == CASE_FILE:
            return self.case_events(checkpoints[0])
        return self.chain(checkpoints)

    def case_events(self, checkpoint: dict) -> dict[int, dict]:
        """The case's events: each hashed, linked to the one before where both are
        present, and included in the checkpoint's tree by its proof."""
        size, root = checkpoint["tree_size"], bytes.fromhex(checkpoint["root"])
        events, previous = {}, None
        for number, line in self.bundle.lines("events.jsonl"):
            event = line.get("event") if isinstance(line, dict) else None
            if not isinstance(event, dict):
                raise Failure(f"events.jsonl line {number}: no event")
            hash_ = check_event(event)
            seq = event["seq"]
            if event["tenant_id"] != checkpoint["tenant_id"] or not 0 < seq <= size:
                raise Failure(f"event {seq}: not in the checkpoint's chain")
            if previous is not None and seq <= previous["seq"]:
                raise Failure(f"event {seq}: out of order after event {previous['seq']}")
            if previous is not None and seq == previous["seq"] + 1:
                self.link(previous, event)
            try:
                proof = [bytes.fromhex(node) for node in line.get("proof", [])]
            except (TypeError, ValueError):
                raise Failure(f"event {seq}: its inclusion proof is not hex") from None
            if root_from_inclusion_proof(seq - 1, size, bytes.fromhex(hash_), proof) != root:
                raise Failure(f"event {seq}: its inclusion proof does not lead to the checkpoint's root")
            events[seq], previous = event, event
        self.held_against_case(checkpoint)
        self.report.append(f"events: {len(events)}, each hashed and proved to be in the checkpoint's tree")
        return events

    def held_against_case(self, checkpoint: dict) -> None:
        """A checkpoint the inspector holds (mailed to a witness) must be consistent with
        the bundle's: the bundle carries a proof from every earlier checkpoint."""
        if not self.held:
            return
        proofs = {}
        if "consistency.jsonl" in self.bundle.names:
            proofs = {entry["tree_size"]: entry for _, entry in self.bundle.lines("consistency.jsonl")}
        for held in self.held:
            if held["tenant_id"] != checkpoint["tenant_id"]:
                raise Failure("the checkpoint you hold is of another tenant")
            entry = proofs.get(held["tree_size"])
            if held["tree_size"] > checkpoint["tree_size"]:
                raise Failure(
                    f"the checkpoint you hold covers {held['tree_size']} events, more than this bundle's "
                    f"{checkpoint['tree_size']}: the chain was cut"
                )
            proof = [bytes.fromhex(node) for node in (entry or {}).get("proof", [])]
            if entry is None or not consistent(
                held["tree_size"],
                checkpoint["tree_size"],
                bytes.fromhex(held["root"]),
                bytes.fromhex(checkpoint["root"]),
                proof,
            ):
                raise Failure(
                    f"the checkpoint you hold (tree size {held['tree_size']}) is not consistent with this "
                    "bundle's: the chain was rewritten after it"
                )
        self.report.append(f"checkpoints you hold: {len(self.held)}, each consistent with the bundle's")

    def chain(self, checkpoints: list[dict]) -> dict[int, dict]:
        """A tenant export's whole chain: every event from 1, linked, and every
        checkpoint's root recomputed from it (so consecutive ones are consistent)."""
        wanted = {}
        for checkpoint in [*checkpoints, *self.held]:
            wanted.setdefault(checkpoint["tree_size"], []).append(checkpoint)
        tenant_id = checkpoints[0]["tenant_id"]
        stack: list[tuple[int, bytes]] = []
        events, previous, count = {}, None, 0
        for number, event in self.bundle.lines("events.jsonl"):
            if not isinstance(event, dict):
                raise Failure(f"events.jsonl line {number}: no event")
            hash_ = check_event(event)
            if event["seq"] != count + 1:
                raise Failure(f"event {count + 1} is missing")
            if event["tenant_id"] != tenant_id:
                raise Failure(f"event {event['seq']}: of another tenant")
            if previous is None and event["prev_hash"] != GENESIS_HASH:
                raise Failure("event 1: does not start the chain")
            if previous is not None:
                self.link(previous, event)
            count += 1
            push_leaf(stack, bytes.fromhex(hash_))
            for checkpoint in wanted.get(count, []):
                if stack_root(stack) != bytes.fromhex(checkpoint["root"]) or checkpoint["head_hash"] != hash_:
                    raise Failure(
                        f"checkpoint at tree size {count} ({checkpoint['time']}): its root does not match "
                        "the chain: the chain was rewritten after it"
                    )
            events[event["seq"]] = event
            previous = event
        for size in sorted(wanted):
            if size > count:
                raise Failure(
                    f"checkpoint at tree size {size} ({wanted[size][0]['time']}) covers more than the "
                    f"{count} events in the chain: the chain was cut"
                )
        self.report.append(
            f"chain: {count} events from 1, each hashed and linked; every checkpoint's root holds"
        )
        return events

    @staticmethod
    def link(previous: dict, event: dict) -> None:
        seq = event["seq"]
        if event["prev_hash"] != previous["hash"]:
            raise Failure(f"event {seq}: does not link to the event before it")
        earlier, later = previous.get("chained_at"), event.get("chained_at")
        if earlier is not None and (later is None or later < earlier):
            raise Failure(f"event {seq}: chained earlier than the event before it")

    def references(self, manifest: dict, digests: dict[str, str], events: dict[int, dict]) -> None:
        """Every file an event names is present with the digest the event records."""
        references = manifest.get("references", [])
        for reference in references:
            name, seq, pointer = reference.get("path"), reference.get("seq"), reference.get("pointer", "")
            if name not in digests:
                raise Failure(f"{name}: named by event {seq} but not in the bundle")
            if seq not in events:
                raise Failure(f"{name}: names event {seq}, which is not in the bundle")
            recorded = resolve(events[seq]["data"], pointer)
            if recorded != digests[name]:
                raise Failure(f"{name}: event {seq} records SHA-256 {recorded}, the file has {digests[name]}")
        self.report.append(
            f"files named by events: {len(references)}, each with the digest its event records"
        )


def push_leaf(stack: list[tuple[int, bytes]], leaf: bytes) -> None:
    """Add leaf data (an event hash's 32 bytes) to a stack of complete subtrees, sizes
    strictly decreasing: a tree's root in one pass over its leaves."""
    node, size = leaf_hash(leaf), 1
    while stack and stack[-1][0] == size:
        left_size, left = stack.pop()
        node, size = node_hash(left, node), left_size + size
    stack.append((size, node))


def stack_root(stack: list[tuple[int, bytes]]) -> bytes:
    """The root of the tree the stack holds (RFC 9162's MTH): the subtrees folded right to left."""
    if not stack:
        return EMPTY_ROOT
    root = stack[-1][1]
    for _, node in reversed(stack[:-1]):
        root = node_hash(node, root)
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="verify.py",
        description="Check a Ledgerdesk case file (ZIP) or tenant export (folder) "
        "without trusting the provider.",
    )
    parser.add_argument("path", type=Path, help="the case file's ZIP or the tenant export's folder")
    parser.add_argument(
        "--keys",
        type=Path,
        help="the provider's published keys (/.well-known/ledgerdesk-keys.json), saved to a file",
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        action="append",
        default=[],
        help="a checkpoint you hold (mailed to a witness); may be given more than once",
    )
    args = parser.parse_args(argv)
    try:
        trusted = load_keys(json.loads(args.keys.read_bytes()), str(args.keys)) if args.keys else None
        held = [json.loads(path.read_bytes()) for path in args.checkpoint]
        report = Verification(Bundle(args.path), trusted, held).run()
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        print(f"FAILED: cannot read it: {error}")
        return 1
    except Failure as failure:
        print(f"FAILED: {failure}")
        return 1
    except (KeyError, TypeError, AttributeError, IndexError) as error:
        print(f"FAILED: not of the documented format ({type(error).__name__}: {error})")
        return 1
    print("\n".join(report))
    print("OK: everything above holds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
