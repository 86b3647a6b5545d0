"""A merged customer record is kept, pointing at the record it was merged into, rather
than deleted (issue 17, section 4): old links and audit events still name a record that
exists, and its id is never given to another customer (SQLite reuses the highest id).

Revision ID: 0037_customer_merges
Revises: 0036_bulk_and_saved_views
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0037_customer_merges"
down_revision = "0036_bulk_and_saved_views"
branch_labels = None
depends_on = None

BigIntId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade():
    with op.batch_alter_table("customers") as batch:
        # No foreign key: on SQLite adding one rebuilds the table, which its generated
        # column (phone_tail) does not survive. Only merge_customers sets it.
        batch.add_column(sa.Column("merged_into_id", BigIntId, nullable=True))


def downgrade():
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("merged_into_id")
