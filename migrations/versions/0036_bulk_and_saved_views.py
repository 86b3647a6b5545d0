"""Bulk changes to tickets, run as a job with their progress, and each user's saved
queue views (issue 17, section 3). Row-level security as in 0029.

Revision ID: 0036_bulk_and_saved_views
Revises: 0035_two_factor
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0036_bulk_and_saved_views"
down_revision = "0035_two_factor"
branch_labels = None
depends_on = None

BigIntId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TENANT = "NULLIF(current_setting('ledgerdesk.tenant_id', true), '')::bigint"
TABLES = ("bulk_runs", "saved_views")


def _user_fk(table: str, column: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id", column], ["users.tenant_id", "users.id"], name=op.f(f"fk_{table}_tenant_id_{column}_users")
    )


def upgrade():
    op.create_table(
        "bulk_runs",
        sa.Column("id", BigIntId, nullable=False),
        sa.Column("requested_by_id", BigIntId, nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("ticket_ids", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("changed", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tenant_id", BigIntId, nullable=False),
        _user_fk("bulk_runs", "requested_by_id"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_bulk_runs_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bulk_runs")),
        sa.UniqueConstraint("tenant_id", "id", name=op.f("uq_bulk_runs_tenant_id_id")),
    )
    op.create_table(
        "saved_views",
        sa.Column("id", BigIntId, nullable=False),
        sa.Column("user_id", BigIntId, nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", BigIntId, nullable=False),
        _user_fk("saved_views", "user_id"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_saved_views_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saved_views")),
        sa.UniqueConstraint("tenant_id", "id", name=op.f("uq_saved_views_tenant_id_id")),
        sa.UniqueConstraint("tenant_id", "user_id", "name", name=op.f("uq_saved_views_tenant_id_user_id_name")),
    )
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(
                f"CREATE POLICY tenant_isolation ON {table} "
                f"USING (tenant_id = {TENANT}) WITH CHECK (tenant_id = {TENANT})"
            )


def downgrade():
    op.drop_table("saved_views")
    op.drop_table("bulk_runs")
