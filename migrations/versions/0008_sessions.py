"""Server-side sessions, idle timeout, lockout per email and address (issue 10)

Revision ID: 0008_sessions
Revises: 0007_requester
Create Date: 2026-12-03
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

# revision identifiers, used by Alembic.
revision = '0008_sessions'
down_revision = '0007_requester'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
