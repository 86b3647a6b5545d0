"""Roots and proofs over a stored chain read from block roots (crm.audit.proofs) are the
ones the whole tree in memory gives, for sizes around block boundaries; the block
roots are stored once, per tenant, and a wrong one cannot make a proof hold."""

import pytest
from sqlalchemy import create_engine, func, select, text

from crm.audit.merkle import MerkleTree
from crm.audit.models import AuditEvent, AuditMerkleBlock
from crm.audit.proofs import BLOCK, ChainTree
from crm.audit.service import Actor, record
from crm.audit.verifier import consistent, root_from_inclusion_proof
from tests.conftest import acting_for

EVENTS = 2 * BLOCK + 300


@pytest.fixture
def long_chain(app, make_tenant):
    """A tenant whose chain holds a little over two blocks of events."""
    tenant = make_tenant()
    with acting_for(app, tenant) as session:
        for n in range(EVENTS - _count(session)):
            record("test.step", "widget", n, actor=Actor.system(), data={"n": n})
        session.commit()
    with acting_for(app, tenant) as session:
        hashes = list(session.scalars(select(AuditEvent.hash).order_by(AuditEvent.seq)))
    assert len(hashes) == EVENTS
    return tenant, hashes


def _count(session) -> int:
    return session.scalar(select(func.count()).select_from(AuditEvent))


SIZES = (1, 2, 5, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK - 1, 2 * BLOCK, 2 * BLOCK + 1, EVENTS)


def test_roots_and_proofs_match_the_whole_tree(app, long_chain):
    tenant, hashes = long_chain
    whole = MerkleTree(hashes)
    with acting_for(app, tenant) as session:
        for size in SIZES:
            tree = ChainTree(size)
            assert tree.root() == whole.root(size), size
            for index in {0, size // 2, size - 1, min(BLOCK, size - 1)}:
                assert tree.inclusion_proof(index) == whole.inclusion_proof(index, size), (size, index)
            for old in {1, size // 3, BLOCK - 1, BLOCK + 7} - {0}:
                if old <= size:
                    assert tree.consistency_proof(old) == whole.consistency_proof(old, size), (old, size)
        session.commit()


def test_block_roots_are_stored_once_and_read_back(app, long_chain):
    tenant, hashes = long_chain
    with acting_for(app, tenant) as session:
        first = ChainTree(EVENTS).root()
        session.commit()
        stored = dict(session.execute(select(AuditMerkleBlock.block, AuditMerkleBlock.hash)).all())
        assert sorted(stored) == [0, 1]
        assert stored[1] == MerkleTree(hashes[BLOCK : 2 * BLOCK]).root()
        again = ChainTree(EVENTS)
        assert again.root() == first
        session.commit()
        assert session.scalar(select(func.count()).select_from(AuditMerkleBlock)) == 2


def test_a_wrong_stored_block_gives_proofs_that_fail(app, long_chain):
    """Block roots are derived data: a wrong one changes what is computed, and the
    verifier's check against the true root refuses it."""
    tenant, hashes = long_chain
    true_root = bytes.fromhex(MerkleTree(hashes).root())
    with acting_for(app, tenant) as session:
        ChainTree(EVENTS)
        session.commit()
        # Written wrong by someone with the owner's access (the app's role may not).
        owner = create_engine(app.config["OWNER_DATABASE_URI"])
        with owner.begin() as connection:
            connection.execute(
                text("UPDATE audit_merkle_blocks SET hash = :h WHERE tenant_id = :t AND block = 0"),
                {"h": "ab" * 32, "t": tenant.id},
            )
        owner.dispose()
        tree = ChainTree(EVENTS)
        leaf = 2 * BLOCK + 5  # its proof climbs past block 0
        proof = [bytes.fromhex(node) for node in tree.inclusion_proof(leaf)]
        assert root_from_inclusion_proof(leaf, EVENTS, bytes.fromhex(hashes[leaf]), proof) != true_root
        assert not consistent(
            BLOCK + 3,
            EVENTS,
            bytes.fromhex(MerkleTree(hashes[: BLOCK + 3]).root()),
            true_root,
            [bytes.fromhex(node) for node in tree.consistency_proof(BLOCK + 3)],
        )


def test_each_tenant_reads_only_its_own_blocks(app, long_chain, make_tenant):
    tenant, _ = long_chain
    other = make_tenant()
    with acting_for(app, tenant) as session:
        ChainTree(EVENTS)
        session.commit()
    with acting_for(app, other) as session:
        own = list(session.scalars(select(AuditEvent.hash).order_by(AuditEvent.seq)))
        assert ChainTree(len(own)).root() == MerkleTree(own).root()
        assert session.scalar(select(func.count()).select_from(AuditMerkleBlock)) == 0


def test_a_size_beyond_the_chain_is_refused(app, long_chain):
    tenant, _ = long_chain
    with acting_for(app, tenant), pytest.raises(ValueError, match="fewer than"):
        ChainTree(EVENTS + 1).root()
    with acting_for(app, tenant), pytest.raises(ValueError, match="fewer than"):
        ChainTree(3 * BLOCK + 1)
