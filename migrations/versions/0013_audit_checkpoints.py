"""Signed checkpoints of each tenant's chain and the tenant's witness addresses (issue 12).

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
