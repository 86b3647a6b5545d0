"""The Merkle tree over a tenant's event hashes, as RFC 9162 (Certificate Transparency
v2) defines it, and its inclusion and consistency proofs.

Leaf ``i`` (0-based) is event ``seq = i + 1``; its leaf data are the 32 bytes the
event's ``hash`` encodes. ``docs/audit-format.md`` writes the hashing out; the matching
verification lives in ``crm.audit.verifier``, which stands alone.

The tree keeps, per level, the hashes of its complete, aligned subtrees (two
concatenated 32-byte strings per leaf at most), so any root and proof RFC 9162 asks for
is a handful of lookups and O(log n) hashes."""

from collections.abc import Iterable

from crm.audit.verifier import EMPTY_ROOT, leaf_hash, node_hash

HASH_SIZE = 32


class TreeProofs:
    """RFC 9162's roots and proofs over a tree of ``size`` leaves, given how to hash a
    subtree (``_subtree``): kept in memory by ``MerkleTree``, read from stored blocks by
    ``crm.audit.proofs.ChainTree``."""

    size: int

    def root(self, size: int | None = None) -> str:
        """MTH(D[0:size]) as lowercase hex; the whole tree by default."""
        size = self.size if size is None else size
        self._check_size(size)
        return self._subtree(0, size).hex() if size else EMPTY_ROOT.hex()

    def inclusion_proof(self, index: int, size: int | None = None) -> list[str]:
        """PATH(index, D[0:size]): the audit path of leaf ``index`` (event ``index + 1``)."""
        size = self.size if size is None else size
        self._check_size(size)
        if not 0 <= index < size:
            raise ValueError(f"leaf {index} is outside a tree of {size}")
        return [node.hex() for node in self._path(index, 0, size)]

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[str]:
        """PROOF(old_size, D[0:new_size]): that the tree of ``old_size`` is a prefix."""
        new_size = self.size if new_size is None else new_size
        self._check_size(new_size)
        if not 0 <= old_size <= new_size:
            raise ValueError(f"no consistency proof from {old_size} to {new_size}")
        if old_size in (0, new_size):
            return []
        return [node.hex() for node in self._subproof(old_size, 0, new_size, True)]

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self.size:
            raise ValueError(f"the tree holds {self.size} leaves, not {size}")

    def _subtree(self, start: int, end: int) -> bytes:
        raise NotImplementedError

    def _path(self, index: int, start: int, end: int) -> list[bytes]:
        if end - start == 1:
            return []
        split = _largest_power_of_two_below(end - start)
        if index < split:
            return [*self._path(index, start, start + split), self._subtree(start + split, end)]
        return [*self._path(index - split, start + split, end), self._subtree(start, start + split)]

    def _subproof(self, old_size: int, start: int, end: int, complete: bool) -> list[bytes]:
        if old_size == end - start:
            return [] if complete else [self._subtree(start, end)]
        split = _largest_power_of_two_below(end - start)
        if old_size <= split:
            return [
                *self._subproof(old_size, start, start + split, complete),
                self._subtree(start + split, end),
            ]
        return [
            *self._subproof(old_size - split, start + split, end, False),
            self._subtree(start, start + split),
        ]


class MerkleTree(TreeProofs):
    """The tree over event hashes (hex strings, in ``seq`` order), kept in memory."""

    def __init__(self, event_hashes: Iterable[str]) -> None:
        leaves = bytearray()
        for event_hash in event_hashes:
            leaves += leaf_hash(bytes.fromhex(event_hash))
        self._levels: list[bytes] = [bytes(leaves)]
        level = self._levels[0]
        while len(level) >= 2 * HASH_SIZE:
            pairs = len(level) // (2 * HASH_SIZE)
            level = b"".join(
                node_hash(
                    level[2 * j * HASH_SIZE : (2 * j + 1) * HASH_SIZE],
                    level[(2 * j + 1) * HASH_SIZE : (2 * j + 2) * HASH_SIZE],
                )
                for j in range(pairs)
            )
            self._levels.append(level)
        self.size = len(self._levels[0]) // HASH_SIZE

    def _subtree(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for the ranges RFC 9162's recursion visits: a complete,
        aligned subtree is stored; a right edge splits at the largest power of two."""
        width = end - start
        if width & (width - 1) == 0 and start % width == 0:
            level = width.bit_length() - 1
            offset = (start // width) * HASH_SIZE
            return self._levels[level][offset : offset + HASH_SIZE]
        split = _largest_power_of_two_below(width)
        return node_hash(self._subtree(start, start + split), self._subtree(start + split, end))


def _largest_power_of_two_below(n: int) -> int:
    """The k of RFC 9162: the largest power of two smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)
