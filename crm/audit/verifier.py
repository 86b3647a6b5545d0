"""The standalone verifier of Ledgerdesk audit evidence.

This file imports nothing from Ledgerdesk: it needs Python's standard library and, for
signatures, ``cryptography``. It is shipped inside every case file and tenant export as
``verify.py`` and installed as the ``ledgerdesk-verify`` command, so an inspector can
check what they were sent on their own machine without trusting the provider.
``docs/audit-format.md`` writes down every format it checks."""

import base64
import hashlib
import json
import sys

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


def main(argv: list[str] | None = None) -> int:
    print("usage: verify.py PATH (a case file's ZIP or a tenant export's folder)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
