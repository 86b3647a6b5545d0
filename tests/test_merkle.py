"""The Merkle tree and its proofs against RFC 9162's recursive definitions, for every
tree size up to 40 and every leaf and prefix in them."""

import hashlib

import pytest

from crm.audit.merkle import MerkleTree
from crm.audit.verifier import EMPTY_ROOT, consistent, leaf_hash, node_hash, root_from_inclusion_proof


def _hashes(n: int) -> list[str]:
    return [hashlib.sha256(str(i).encode()).hexdigest() for i in range(n)]


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 2.1.1, as written."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    k = _k(len(leaves))
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def path(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 9162 2.1.3.1, as written."""
    if len(leaves) == 1:
        return []
    k = _k(len(leaves))
    if m < k:
        return [*path(m, leaves[:k]), mth(leaves[k:])]
    return [*path(m - k, leaves[k:]), mth(leaves[:k])]


def subproof(m: int, leaves: list[bytes], b: bool) -> list[bytes]:
    """RFC 9162 2.1.4.1, as written."""
    if m == len(leaves):
        return [] if b else [mth(leaves)]
    k = _k(len(leaves))
    if m <= k:
        return [*subproof(m, leaves[:k], b), mth(leaves[k:])]
    return [*subproof(m - k, leaves[k:], False), mth(leaves[:k])]


@pytest.mark.parametrize("size", range(0, 41))
def test_roots_and_proofs_are_rfc_9162(size):
    hashes = _hashes(size)
    leaves = [bytes.fromhex(h) for h in hashes]
    tree = MerkleTree(hashes)
    assert tree.root() == mth(leaves).hex()
    for m in range(size):
        proof = tree.inclusion_proof(m)
        assert proof == [node.hex() for node in path(m, leaves)]
        assert root_from_inclusion_proof(m, size, leaves[m], [bytes.fromhex(p) for p in proof]) == mth(leaves)
    for old in range(1, size + 1):
        proof = tree.consistency_proof(old)
        expected = subproof(old, leaves, True) if old < size else []
        assert proof == [node.hex() for node in expected]
        assert tree.root(old) == mth(leaves[:old]).hex()
        assert consistent(old, size, mth(leaves[:old]), mth(leaves), [bytes.fromhex(p) for p in proof])


def test_a_proof_for_another_leaf_or_root_does_not_verify():
    hashes = _hashes(13)
    leaves = [bytes.fromhex(h) for h in hashes]
    tree = MerkleTree(hashes)
    proof = [bytes.fromhex(p) for p in tree.inclusion_proof(5)]
    root = bytes.fromhex(tree.root())
    assert root_from_inclusion_proof(5, 13, leaves[5], proof) == root
    assert root_from_inclusion_proof(5, 13, leaves[6], proof) != root
    assert root_from_inclusion_proof(6, 13, leaves[5], proof) != root
    assert root_from_inclusion_proof(13, 13, leaves[5], proof) is None


def test_a_rewritten_prefix_is_not_consistent_with_the_old_root():
    old_hashes = _hashes(7)
    old_root = bytes.fromhex(MerkleTree(old_hashes).root())
    rewritten = _hashes(12)
    rewritten[3] = hashlib.sha256(b"forged").hexdigest()
    tree = MerkleTree(rewritten)
    proof = [bytes.fromhex(p) for p in tree.consistency_proof(7)]
    assert not consistent(7, 12, old_root, bytes.fromhex(tree.root()), proof)


def test_sizes_outside_the_tree_are_refused():
    tree = MerkleTree(_hashes(4))
    with pytest.raises(ValueError):
        tree.root(5)
    with pytest.raises(ValueError):
        tree.inclusion_proof(4)
    with pytest.raises(ValueError):
        tree.consistency_proof(5)
