"""Reserved for issue 12 and landed empty; kept as a no-op so that databases migrated
while it was empty still upgrade (the chain heads guard is 0016).

Revision ID: 0012_audit_chained_at
Revises: 0011_staff_notifications
Create Date: 2026-12-03
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

# revision identifiers, used by Alembic.
revision = "0012_audit_chained_at"
down_revision = "0011_staff_notifications"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
