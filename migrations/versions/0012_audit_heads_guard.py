"""The chaining time of each event (issue 12): filled by the audit-holes work.

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
