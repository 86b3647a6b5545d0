"""Whether a tenant's IMAP mailbox must still resolve to public addresses when polled: an
admin's (set on the page, checked then) is checked again at every poll, since a name can
be made to resolve elsewhere later; an operator's, set from the command line, may be on
their own network. Mailboxes set before this are checked (an operator who set a private
one sets it again with ``flask mail imap``).

Revision ID: 0043_imap_public_only
Revises: 0042_outbox_auto_submitted
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0043_imap_public_only"
down_revision = "0042_outbox_auto_submitted"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("tenant_settings") as batch:
        batch.add_column(
            sa.Column("imap_public_only", sa.Boolean(), nullable=False, server_default=sa.true())
        )


def downgrade():
    with op.batch_alter_table("tenant_settings") as batch:
        batch.drop_column("imap_public_only")
