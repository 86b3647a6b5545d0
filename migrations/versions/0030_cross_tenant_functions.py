"""The named paths that span tenants, as SECURITY DEFINER functions owned by the owner
(issue 16): the application role, bound by row-level security, may ask exactly these
questions of every tenant and nothing more. PostgreSQL only.

- ``ledgerdesk_due_clocks``: the SLA sweep's next batch of clocks with a warning or
  breach due (the clock's id and tenant only);
- ``ledgerdesk_api_key``: the API key with a digest, before its tenant is known;
- ``ledgerdesk_due_webhook_deliveries``: deliveries whose next attempt is due.

Revision ID: 0030_cross_tenant_functions
Revises: 0029_row_level_security
Create Date: 2026-12-04
"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "0030_cross_tenant_functions"
down_revision = "0029_row_level_security"
branch_labels = None
depends_on = None

FUNCTIONS = {
    "ledgerdesk_due_clocks(timestamptz, timestamptz, bigint, integer)": """
        RETURNS TABLE (check_at timestamptz, id bigint, tenant_id bigint)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = {schema} AS $$
            SELECT c.check_at, c.id, c.tenant_id FROM clocks c
            WHERE c.check_at <= $1 AND ($2 IS NULL OR (c.check_at, c.id) > ($2, $3))
            ORDER BY c.check_at, c.id LIMIT $4
        $$""",
    "ledgerdesk_api_key(text)": """
        RETURNS SETOF api_keys
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = {schema} AS $$
            SELECT * FROM api_keys WHERE key_hash = $1
        $$""",
    "ledgerdesk_due_webhook_deliveries(timestamptz, integer)": """
        RETURNS TABLE (id bigint, tenant_id bigint)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = {schema} AS $$
            SELECT d.id, d.tenant_id FROM webhook_deliveries d
            WHERE d.status = 'pending' AND d.next_attempt_at <= $1
            ORDER BY d.next_attempt_at LIMIT $2
        $$""",
}


def upgrade():
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    schema = bind.exec_driver_sql("SELECT current_schema()").scalar()
    for signature, body in FUNCTIONS.items():
        op.execute(f"CREATE FUNCTION {signature} {body.format(schema=schema)}")
        # Only the roles granted it (flask db grant-app-role) may call it.
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    for signature in FUNCTIONS:
        op.execute(f"DROP FUNCTION IF EXISTS {signature}")
