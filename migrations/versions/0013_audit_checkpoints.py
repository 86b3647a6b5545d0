"""Reserved for issue 12 and landed empty; kept as a no-op so that databases migrated
while it was empty still upgrade (the checkpoints are 0018).

Revision ID: 0013_audit_checkpoints
Revises: 0012_audit_chained_at
Create Date: 2026-12-03
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

# revision identifiers, used by Alembic.
revision = "0013_audit_checkpoints"
down_revision = "0012_audit_chained_at"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
