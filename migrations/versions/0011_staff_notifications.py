"""Staff notifications for ticket events (issue 11, section 6): a notification need not
belong to a clock (a customer's reply, "not satisfied", a decision waiting for approval),
and each user chooses whether notifications also come by email.

Revision ID: 0011_staff_notifications
Revises: 0010_decisions
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0011_staff_notifications"
down_revision = "0010_decisions"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        # Everyone already here keeps getting email, as before.
        batch_op.add_column(
            sa.Column("email_notifications", sa.Boolean(), nullable=False, server_default=sa.true())
        )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.alter_column("clock_id", existing_type=ID, nullable=True)


def downgrade():
    # Notifications of ticket events have no clock to keep them by: they go.
    op.execute("DELETE FROM notifications WHERE clock_id IS NULL")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.alter_column("clock_id", existing_type=ID, nullable=False)
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("email_notifications")
