"""Row-level security on every tenant-owned table (issue 16): a row is visible and
writable only when its tenant_id equals the transaction's ``ledgerdesk.tenant_id``
setting, which the app sets from the tenant in context (``tenants.rls``). It binds the
application role (``flask db grant-app-role``), not the owner that runs migrations.
PostgreSQL only; on SQLite this revision does nothing.

A later table with a tenant_id needs the same policy in its own migration
(``tests/test_rls.py`` fails until it has one).

Revision ID: 0029_row_level_security
Revises: 0028_escalation_outcomes
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0029_row_level_security"
down_revision = "0028_escalation_outcomes"
branch_labels = None
depends_on = None

TENANT = "NULLIF(current_setting('ledgerdesk.tenant_id', true), '')::bigint"


def _tenant_tables(bind) -> list[str]:
    return list(
        bind.execute(
            sa.text(
                "SELECT table_name FROM information_schema.columns "
                "WHERE column_name = 'tenant_id' AND table_schema = current_schema() ORDER BY table_name"
            )
        ).scalars()
    )


def upgrade():
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for table in _tenant_tables(bind):
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} "
            f"USING (tenant_id = {TENANT}) WITH CHECK (tenant_id = {TENANT})"
        )


def downgrade():
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for table in _tenant_tables(bind):
        op.execute(f"DROP POLICY IF EXISTS tenant_isolation ON {table}")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
