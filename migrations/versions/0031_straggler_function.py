"""A fourth question asked of every tenant (issue 16): which tenants have audit events
waiting in the inbox longer than they should (the chainer's minute sweep), as a
SECURITY DEFINER function owned by the owner, like those of 0030. PostgreSQL only.

Revision ID: 0031_straggler_function
Revises: 0030_cross_tenant_functions
Create Date: 2026-12-04
"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "0031_straggler_function"
down_revision = "0030_cross_tenant_functions"
branch_labels = None
depends_on = None

SIGNATURE = "ledgerdesk_straggler_tenants(timestamptz)"


def upgrade():
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    schema = bind.exec_driver_sql("SELECT current_schema()").scalar()
    op.execute(
        f"CREATE FUNCTION {SIGNATURE} RETURNS SETOF bigint "
        f"LANGUAGE sql STABLE SECURITY DEFINER SET search_path = {schema} AS $$ "
        "SELECT DISTINCT tenant_id FROM audit_inbox WHERE occurred_at < $1 ORDER BY tenant_id $$"
    )
    op.execute(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC")


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP FUNCTION IF EXISTS {SIGNATURE}")
