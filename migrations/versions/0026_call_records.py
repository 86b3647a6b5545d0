"""Call records posted by a dialer through the API, and payouts recorded by an API key
(issue 15).

Revision ID: 0026_call_records
Revises: 0025_import_runs
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0026_call_records"
down_revision = "0025_import_runs"
branch_labels = None
depends_on = None

BigIntId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _tenant_fk(column: str, table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id", column],
        [f"{table}.tenant_id", f"{table}.id"],
        name=op.f(f"fk_call_records_tenant_id_{column}_{table}"),
    )


def upgrade():
    op.create_table(
        "call_records",
        sa.Column("id", BigIntId, nullable=False),
        sa.Column("external_id", sa.String(length=100), nullable=True),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("from_number", sa.String(length=20), nullable=False),
        sa.Column("to_number", sa.String(length=20), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_seconds", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("unmatched_reason", sa.String(length=300), nullable=True),
        sa.Column("ticket_id", BigIntId, nullable=True),
        sa.Column("lead_id", BigIntId, nullable=True),
        sa.Column("entry_id", BigIntId, nullable=True),
        sa.Column("recording_state", sa.String(length=8), nullable=True),
        sa.Column("recording_sha256", sa.String(length=64), nullable=True),
        sa.Column("recording_url", sa.String(length=500), nullable=True),
        sa.Column("recording_size", sa.Integer(), nullable=True),
        sa.Column("recording_type", sa.String(length=40), nullable=True),
        sa.Column("recording_name", sa.String(length=120), nullable=True),
        sa.Column("recording_error", sa.String(length=300), nullable=True),
        sa.Column("api_key_id", BigIntId, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_by_id", BigIntId, nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dismissed_reason", sa.String(length=500), nullable=True),
        sa.Column("tenant_id", BigIntId, nullable=False),
        _tenant_fk("ticket_id", "tickets"),
        _tenant_fk("lead_id", "leads"),
        _tenant_fk("api_key_id", "api_keys"),
        _tenant_fk("resolved_by_id", "users"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_call_records_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_records")),
        sa.UniqueConstraint("tenant_id", "id", name=op.f("uq_call_records_tenant_id_id")),
    )
    op.create_index(
        op.f("ix_call_records_tenant_id_state_id"), "call_records", ["tenant_id", "state", "id"], unique=False
    )
    with op.batch_alter_table("payouts") as batch:
        batch.alter_column("recorded_by_id", existing_type=BigIntId, nullable=True)


def downgrade():
    with op.batch_alter_table("payouts") as batch:
        batch.alter_column("recorded_by_id", existing_type=BigIntId, nullable=False)
    op.drop_index(op.f("ix_call_records_tenant_id_state_id"), table_name="call_records")
    op.drop_table("call_records")
