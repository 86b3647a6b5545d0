"""Two-step sign-in (issue 17, section 5): a time-based code from an authenticator app,
with single-use recovery codes, and each tenant's choice to require it of managers and
admins. The secret is kept encrypted with a key derived from SECRET_KEY; the recovery
codes as SHA-256 digests; the last code's time step, so a code works once.

Revision ID: 0035_two_factor
Revises: 0034_password_resets
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0035_two_factor"
down_revision = "0034_password_resets"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("totp_secret", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("totp_enabled_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("totp_last_step", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("recovery_codes", sa.JSON(), nullable=True))
    with op.batch_alter_table("tenant_settings") as batch:
        batch.add_column(
            sa.Column("require_two_factor", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade():
    with op.batch_alter_table("tenant_settings") as batch:
        batch.drop_column("require_two_factor")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("recovery_codes")
        batch.drop_column("totp_last_step")
        batch.drop_column("totp_enabled_at")
        batch.drop_column("totp_secret")
