"""When a customer's personal data was erased at their request (issue 17, section 4):
the record stays, without who it was, so its tickets and audit events still name it.

Revision ID: 0041_customer_erasure
Revises: 0040_ticket_search
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0041_customer_erasure"
down_revision = "0040_ticket_search"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("erased_at")
