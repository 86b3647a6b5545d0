"""Where and in what browser each staff session was started, for the session list on the
account page (issue 17, section 5: each user sees and ends their own sessions).

Revision ID: 0033_session_details
Revises: 0032_outbox_sending
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0033_session_details"
down_revision = "0032_outbox_sending"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("staff_sessions") as batch:
        batch.add_column(sa.Column("ip", sa.String(length=45), nullable=True))
        batch.add_column(sa.Column("user_agent", sa.String(length=300), nullable=True))


def downgrade():
    with op.batch_alter_table("staff_sessions") as batch:
        batch.drop_column("user_agent")
        batch.drop_column("ip")
