"""The Auto-Submitted header (RFC 3834) an outbox message is sent with: what the desk
sends by itself says so, so that a customer's out-of-office does not answer it.

Revision ID: 0042_outbox_auto_submitted
Revises: 0041_customer_erasure
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0042_outbox_auto_submitted"
down_revision = "0041_customer_erasure"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("outbox_messages") as batch:
        batch.add_column(sa.Column("auto_submitted", sa.String(20), nullable=True))


def downgrade():
    with op.batch_alter_table("outbox_messages") as batch:
        batch.drop_column("auto_submitted")
