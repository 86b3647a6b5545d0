"""What an outside body concluded on an escalation, and when (issue 14: the complaints
return's escalations by body and outcome).

Revision ID: 0028_escalation_outcomes
Revises: 0027_clock_met_times
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0028_escalation_outcomes"
down_revision = "0027_clock_met_times"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("escalations") as batch:
        batch.add_column(sa.Column("outcome", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("outcome_on", sa.Date(), nullable=True))
        batch.add_column(sa.Column("outcome_note", sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table("escalations") as batch:
        batch.drop_column("outcome_note")
        batch.drop_column("outcome_on")
        batch.drop_column("outcome")
