"""Merkle subtree roots of complete blocks of each tenant's events (issue 12), so that
checkpoints and case files prove against a long chain without reading all of it.

Revision ID: 0017_audit_merkle_blocks
Revises: 0016_audit_heads_guard
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0017_audit_merkle_blocks"
down_revision = "0016_audit_heads_guard"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "audit_merkle_blocks",
        sa.Column("tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("block", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_audit_merkle_blocks_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("tenant_id", "block", name=op.f("pk_audit_merkle_blocks")),
    )


def downgrade():
    op.drop_table("audit_merkle_blocks")
