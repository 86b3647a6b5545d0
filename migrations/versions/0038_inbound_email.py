"""Inbound email (issue 17, section 1): each tenant's support address, which replies
reach through a plus-address naming the ticket (signed, so it cannot be guessed), and
the Message-ID of each email sent, so a reply's In-Reply-To finds its ticket.

Revision ID: 0038_inbound_email
Revises: 0037_customer_merges
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0038_inbound_email"
down_revision = "0037_customer_merges"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("tenant_settings") as batch:
        batch.add_column(sa.Column("support_address", sa.String(length=254), nullable=True))
    with op.batch_alter_table("outbox_messages") as batch:
        batch.add_column(sa.Column("message_id", sa.String(length=250), nullable=True))
        batch.create_index("ix_outbox_messages_tenant_id_message_id", ["tenant_id", "message_id"], unique=False)


def downgrade():
    with op.batch_alter_table("outbox_messages") as batch:
        batch.drop_index("ix_outbox_messages_tenant_id_message_id")
        batch.drop_column("message_id")
    with op.batch_alter_table("tenant_settings") as batch:
        batch.drop_column("support_address")
