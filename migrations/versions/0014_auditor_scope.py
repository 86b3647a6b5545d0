"""Reserved for issue 12 and landed empty; kept as a no-op so that databases migrated
while it was empty still upgrade (the auditor's window and scope are 0020).

Revision ID: 0014_auditor_scope
Revises: 0013_audit_checkpoints
Create Date: 2026-12-03
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

# revision identifiers, used by Alembic.
revision = "0014_auditor_scope"
down_revision = "0013_audit_checkpoints"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
