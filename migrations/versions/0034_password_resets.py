"""Password resets (issue 17, section 5): a single-use, short-lived link to choose a new
password, asked for on the sign-in page or sent by an admin. The link's token is made
when its email is handed to the mail server and only its SHA-256 is kept, so neither
the outbox nor this table holds a usable link. Row-level security as in 0029.

Revision ID: 0034_password_resets
Revises: 0033_session_details
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0034_password_resets"
down_revision = "0033_session_details"
branch_labels = None
depends_on = None

BigIntId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TENANT = "NULLIF(current_setting('ledgerdesk.tenant_id', true), '')::bigint"


def upgrade():
    op.create_table(
        "password_resets",
        sa.Column("id", BigIntId, nullable=False),
        sa.Column("user_id", BigIntId, nullable=False),
        sa.Column("requested_by_id", BigIntId, nullable=True),
        sa.Column("outbox_message_id", BigIntId, nullable=True),
        sa.Column("token_digest", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tenant_id", BigIntId, nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "user_id"],
            ["users.tenant_id", "users.id"],
            name=op.f("fk_password_resets_tenant_id_user_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "requested_by_id"],
            ["users.tenant_id", "users.id"],
            name=op.f("fk_password_resets_tenant_id_requested_by_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "outbox_message_id"],
            ["outbox_messages.tenant_id", "outbox_messages.id"],
            name=op.f("fk_password_resets_tenant_id_outbox_message_id_outbox_messages"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_password_resets_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_password_resets")),
        sa.UniqueConstraint("tenant_id", "id", name=op.f("uq_password_resets_tenant_id_id")),
        sa.UniqueConstraint(
            "tenant_id", "token_digest", name=op.f("uq_password_resets_tenant_id_token_digest")
        ),
    )
    op.create_index(
        op.f("ix_password_resets_tenant_id_user_id"),
        "password_resets",
        ["tenant_id", "user_id"],
        unique=False,
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE password_resets ENABLE ROW LEVEL SECURITY")
        op.execute(
            "CREATE POLICY tenant_isolation ON password_resets "
            f"USING (tenant_id = {TENANT}) WITH CHECK (tenant_id = {TENANT})"
        )


def downgrade():
    op.drop_table("password_resets")
