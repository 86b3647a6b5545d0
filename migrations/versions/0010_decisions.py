"""Final answers that cannot slip out (issue 11)

Revision ID: 0010_decisions
Revises: 0009_deadlines
Create Date: 2026-12-03
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

# revision identifiers, used by Alembic.
revision = '0010_decisions'
down_revision = '0009_deadlines'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
