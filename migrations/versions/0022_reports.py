"""Manager reports (issue 14): the weekly report's opt-in and the week it was last sent
for, and an index for the clocks that became due in a period.

Revision ID: 0022_reports
Revises: 0021_leads
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0022_reports"
down_revision = "0021_leads"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("weekly_digest", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("digest_week", sa.Date(), nullable=True))
    with op.batch_alter_table("clocks", schema=None) as batch_op:
        batch_op.create_index("ix_clocks_tenant_id_due_at", ["tenant_id", "due_at"], unique=False)


def downgrade():
    with op.batch_alter_table("clocks", schema=None) as batch_op:
        batch_op.drop_index("ix_clocks_tenant_id_due_at")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("digest_week")
        batch_op.drop_column("weekly_digest")
