"""The IMAP mailbox a tenant's inbound mail is fetched from (its address sealed with a
key derived from SECRET_KEY, as it holds a password), and each inbound message's key
(its Message-ID's SHA-256, else the message's), so one delivered twice (a pipe retried,
a mailbox read again) files once (issue 17, section 1). The poller asks which tenants
have a mailbox of every tenant, so on PostgreSQL that is a SECURITY DEFINER function.

Revision ID: 0039_imap_and_inbound_ids
Revises: 0038_inbound_email
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0039_imap_and_inbound_ids"
down_revision = "0038_inbound_email"
branch_labels = None
depends_on = None

BigIntId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TENANT = "NULLIF(current_setting('ledgerdesk.tenant_id', true), '')::bigint"
SIGNATURE = "ledgerdesk_imap_tenants()"


def upgrade():
    with op.batch_alter_table("tenant_settings") as batch:
        batch.add_column(sa.Column("imap_url_sealed", sa.Text(), nullable=True))
    op.create_table(
        "inbound_messages",
        sa.Column("message_key", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reference", sa.String(length=24), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", BigIntId, nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_inbound_messages_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("tenant_id", "message_key", name=op.f("pk_inbound_messages")),
    )
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE inbound_messages ENABLE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY tenant_isolation ON inbound_messages "
        f"USING (tenant_id = {TENANT}) WITH CHECK (tenant_id = {TENANT})"
    )
    schema = bind.exec_driver_sql("SELECT current_schema()").scalar()
    op.execute(
        f"CREATE FUNCTION {SIGNATURE} RETURNS SETOF bigint "
        f"LANGUAGE sql STABLE SECURITY DEFINER SET search_path = {schema} AS $$ "
        "SELECT tenant_id FROM tenant_settings WHERE imap_url_sealed IS NOT NULL ORDER BY tenant_id $$"
    )
    op.execute(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION IF EXISTS {SIGNATURE}")
    op.drop_table("inbound_messages")
    with op.batch_alter_table("tenant_settings") as batch:
        batch.drop_column("imap_url_sealed")
