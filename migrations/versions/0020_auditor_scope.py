"""An auditor's window and scope (issue 12): when the account's access starts (it
already had an end, ``access_expires_at``), and which tickets it may read: all, those
received in a date range, or a list of tickets.

Revision ID: 0020_auditor_scope
Revises: 0019_exports
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0020_auditor_scope"
down_revision = "0019_exports"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("access_starts_at", sa.DateTime(timezone=True), nullable=True))
        # Everyone already here reads every ticket, as before.
        batch_op.add_column(sa.Column("scope_kind", sa.String(length=16), nullable=False, server_default="all"))
        batch_op.add_column(sa.Column("scope_received_from", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("scope_received_before", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("scope_ticket_ids", sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("scope_ticket_ids")
        batch_op.drop_column("scope_received_before")
        batch_op.drop_column("scope_received_from")
        batch_op.drop_column("scope_kind")
        batch_op.drop_column("access_starts_at")
