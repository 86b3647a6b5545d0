"""Merkle roots and proofs over a tenant's stored chain that read a block's subtree root
instead of its events.

The RFC 9162 tree over events 1..n contains, as complete subtrees, every aligned block
of ``BLOCK`` events that lies wholly inside it (its splits fall on powers of two, so on
block boundaries once a range is wider than a block). The root of each complete block
is computed once from its events and kept in ``audit_merkle_blocks``. A root or proof
then reads the stored blocks, the events of the block a proved event lies in and
those of the last, partial block: about two thousand hashes whatever the chain's
length. The stored roots are not trusted: every proof leads to the root it is checked
against, or fails there."""

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from crm.audit.merkle import MerkleTree, TreeProofs, _largest_power_of_two_below
from crm.audit.models import AuditEvent, AuditMerkleBlock
from crm.audit.verifier import node_hash
from crm.extensions import db
from tenants import current_tenant_id

BLOCK = 1024  # events per stored subtree root: 2**10


class ChainTree(TreeProofs):
    """The tree over the first ``size`` events of the tenant in context. Building it
    stores the roots of complete blocks not stored yet (in the session: the caller
    commits), reading their events once, in order."""

    def __init__(self, size: int) -> None:
        self.size = size
        complete = size // BLOCK
        self._blocks = {
            block: bytes.fromhex(hash_)
            for block, hash_ in db.session.execute(
                select(AuditMerkleBlock.block, AuditMerkleBlock.hash).where(AuditMerkleBlock.block < complete)
            )
        }
        self._leaves: dict[int, MerkleTree] = {}
        self._inner: dict[tuple[int, int], bytes] = {}
        missing = [block for block in range(complete) if block not in self._blocks]
        if missing:
            self._store(self._compute(missing[0], complete))
            if len(self._blocks) < complete:
                raise ValueError(f"the chain holds fewer than {size} events")

    def _subtree(self, start: int, end: int) -> bytes:
        block = start // BLOCK
        if (end - 1) // BLOCK == block:  # inside one block
            if end - start == BLOCK:
                return self._blocks[block]
            return self._block_tree(block)._subtree(start - block * BLOCK, end - block * BLOCK)
        key = (start, end)
        if key not in self._inner:
            split = _largest_power_of_two_below(end - start)
            self._inner[key] = node_hash(
                self._subtree(start, start + split), self._subtree(start + split, end)
            )
        return self._inner[key]

    def forget_before(self, size: int) -> None:
        """Drop the cached event trees and inner nodes a proof about a later size will not
        read again (those ending at or before ``size``'s block), so that walking many
        checkpoints in order keeps memory flat instead of holding the whole chain."""
        keep = size // BLOCK
        self._leaves = {block: tree for block, tree in self._leaves.items() if block >= keep}
        self._inner = {}

    def _block_tree(self, block: int) -> MerkleTree:
        if block not in self._leaves:
            first, end = block * BLOCK, min((block + 1) * BLOCK, self.size)
            tree = MerkleTree(_hashes(first, end))
            if tree.size != end - first:
                raise ValueError(f"the chain holds fewer than {self.size} events")
            self._leaves[block] = tree
        return self._leaves[block]

    def _compute(self, first: int, end: int) -> dict[int, bytes]:
        """The roots of blocks ``first``..``end - 1``, streaming their events once."""
        roots, pending = {}, []
        block = first
        for event_hash in _hashes(first * BLOCK, end * BLOCK):
            pending.append(event_hash)
            if len(pending) == BLOCK:
                if block not in self._blocks:
                    roots[block] = bytes.fromhex(MerkleTree(pending).root())
                block, pending = block + 1, []
        return roots

    def _store(self, roots: dict[int, bytes]) -> None:
        self._blocks.update(roots)
        rows = [
            {"tenant_id": current_tenant_id(), "block": block, "hash": root.hex()}
            for block, root in roots.items()
        ]
        insert = postgresql_insert if db.session.get_bind().dialect.name == "postgresql" else sqlite_insert
        # Two builders may store the same block at once: both computed the same root.
        db.session.execute(insert(AuditMerkleBlock).on_conflict_do_nothing(), rows)


def _hashes(after: int, upto: int):
    """The hashes of events ``after + 1``..``upto`` of the tenant in context, in order.
    Read on the session's connection, past the ORM: a proof needs every event's hash,
    including those of tickets the person asking may not read (an auditor's scope hides
    their content, not their place in the chain)."""
    return (
        db.session.connection()
        .execute(
            select(AuditEvent.hash)
            .where(
                AuditEvent.tenant_id == current_tenant_id(), AuditEvent.seq > after, AuditEvent.seq <= upto
            )
            .order_by(AuditEvent.seq)
            .execution_options(yield_per=BLOCK * 8)
        )
        .scalars()
    )
