"""Tenant exports started from the app, with their progress (issue 12).

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
