"""The business time a clock took to be met, kept when it is met (issue 14), so the SLA
report's medians are read, not recomputed on each clock's calendar at every view.

Clocks met before this revision have none: the report computes theirs as before until
``flask --app wsgi sla backfill-met-times`` has filled them in.

Revision ID: 0027_clock_met_times
Revises: 0026_call_records
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0027_clock_met_times"
down_revision = "0026_call_records"
branch_labels = None
depends_on = None


# The clocks still to backfill: a small partial index, empty once they are filled in.
UNKEPT = (
    "state = 'met' AND met_business_seconds IS NULL AND unit = 'business_minutes' "
    "AND calendar_version_id IS NOT NULL"
)


def upgrade():
    with op.batch_alter_table("clocks") as batch:
        batch.add_column(sa.Column("met_business_seconds", sa.BigInteger(), nullable=True))
        batch.create_index(
            "ix_clocks_met_time_unkept",
            ["tenant_id", "due_at"],
            unique=False,
            postgresql_where=sa.text(UNKEPT),
            sqlite_where=sa.text(UNKEPT),
        )


def downgrade():
    with op.batch_alter_table("clocks") as batch:
        batch.drop_index("ix_clocks_met_time_unkept", postgresql_where=sa.text(UNKEPT), sqlite_where=sa.text(UNKEPT))
        batch.drop_column("met_business_seconds")
