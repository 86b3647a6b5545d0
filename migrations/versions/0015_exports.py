"""Reserved for issue 12 and landed empty; kept as a no-op so that databases migrated
while it was empty still upgrade (the exports are 0019).

Revision ID: 0015_exports
Revises: 0014_auditor_scope
Create Date: 2026-12-03
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

# revision identifiers, used by Alembic.
revision = "0015_exports"
down_revision = "0014_auditor_scope"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
