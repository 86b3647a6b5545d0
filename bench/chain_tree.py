"""Roots and inclusion proofs over a long stored chain (crm.audit.proofs.ChainTree):
the first build computes and stores the block roots, later builds read them.

Run after bench/audit.py has built its 1,000,000-event chain (tenant bench-verify):
    .venv/bin/python bench/chain_tree.py [--database-url URL] [--proofs N]
"""

import argparse
import time

from sqlalchemy import delete, select

from crm import create_app
from crm.audit.merkle import MerkleTree
from crm.audit.models import AuditEvent, AuditHead, AuditMerkleBlock
from crm.audit.proofs import ChainTree
from crm.extensions import db
from tenants import CurrentTenant, tenant_context
from tenants.models import Tenant


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/ledgerdesk_bench"
    )
    parser.add_argument(
        "--proofs", type=int, default=10, help="inclusion proofs, in as many blocks (%(default)s)"
    )
    args = parser.parse_args()
    app = create_app({"SQLALCHEMY_DATABASE_URI": args.database_url, "TESTING": True})
    with app.app_context():
        tenant = db.session.execute(select(Tenant).where(Tenant.slug == "bench-verify")).scalar_one()
        with tenant_context(CurrentTenant.of(tenant)):
            size = db.session.scalar(select(AuditHead.seq))
            db.session.execute(delete(AuditMerkleBlock))
            db.session.commit()
            began = time.perf_counter()
            whole = MerkleTree(db.session.scalars(select(AuditEvent.hash).order_by(AuditEvent.seq)))
            root = whole.root()
            print(
                f"baseline, whole tree in memory: {size} events, root in {time.perf_counter() - began:.3f} s"
            )
            for label in (
                "first ChainTree (computes and stores the blocks)",
                "second ChainTree (reads them)",
            ):
                began = time.perf_counter()
                tree = ChainTree(size)
                assert tree.root() == root
                for index in range(0, size, max(1, size // args.proofs)):
                    tree.inclusion_proof(index)
                db.session.commit()
                print(f"{label}: root and {args.proofs} proofs in {time.perf_counter() - began:.3f} s")


if __name__ == "__main__":
    main()
