"""Regulatory deadline options and true receipt times (issue 11)

Revision ID: 0009_deadlines
Revises: 0008_sessions
Create Date: 2026-12-03
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

# revision identifiers, used by Alembic.
revision = '0009_deadlines'
down_revision = '0008_sessions'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
