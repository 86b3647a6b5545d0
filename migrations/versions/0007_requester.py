"""The requester's details as submitted, kept on each ticket (issue 10)

Revision ID: 0007_requester
Revises: 0006_phone_tail
Create Date: 2026-12-03
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

# revision identifiers, used by Alembic.
revision = '0007_requester'
down_revision = '0006_phone_tail'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
