"""CSV imports started from the page, with their progress and results (issue 13).

Revision ID: 0025_import_runs
Revises: 0024_webhooks
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0025_import_runs"
down_revision = "0024_webhooks"
branch_labels = None
depends_on = None

BigIntId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade():
    op.create_table(
        "import_runs",
        sa.Column("id", BigIntId, nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("requested_by_id", BigIntId, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("file_name", sa.String(length=100), nullable=True),
        sa.Column("original_name", sa.String(length=255), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("imported", sa.Integer(), nullable=False),
        sa.Column("merged", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tenant_id", BigIntId, nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "requested_by_id"],
            ["users.tenant_id", "users.id"],
            name=op.f("fk_import_runs_tenant_id_requested_by_id_users"),
        ),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_import_runs_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_runs")),
        sa.UniqueConstraint("tenant_id", "id", name=op.f("uq_import_runs_tenant_id_id")),
    )


def downgrade():
    op.drop_table("import_runs")
