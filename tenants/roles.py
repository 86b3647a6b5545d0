"""The application's database role (PostgreSQL): what the web tier and the workers
connect as, instead of the owner that runs migrations. It is no superuser and has no
BYPASSRLS, so the row-level security policies bind it (``tenants.rls``); on the audit
tables it may only add and read.
"""

from sqlalchemy import text
from sqlalchemy.engine import Connection

# Append-only: rows are added and read, never changed or removed (their triggers refuse
# it too). The chain heads move and the inbox is drained, so those two are not here.
APPEND_ONLY = ("audit_events", "audit_checkpoints", "audit_merkle_blocks")
CROSS_TENANT_FUNCTIONS = (
    "ledgerdesk_due_clocks(timestamptz, timestamptz, bigint, integer)",
    "ledgerdesk_api_key(text)",
    "ledgerdesk_due_webhook_deliveries(timestamptz, integer)",
    "ledgerdesk_straggler_tenants(timestamptz)",
    "ledgerdesk_stranded_outbox_messages(timestamptz, integer)",
    "ledgerdesk_imap_tenants()",
)


def app_role_statements(role: str, database: str, schema: str = "public") -> list[str]:
    """The statements that make ``role`` the application's role, in order. Run them
    after every migration that adds a table (the command does, idempotently)."""
    return [
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN "
        f'CREATE ROLE "{role}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS; END IF; END $$',
        f'ALTER ROLE "{role}" NOSUPERUSER NOBYPASSRLS',
        f'GRANT CONNECT ON DATABASE "{database}" TO "{role}"',
        f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"',
        f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"',
        f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA "{schema}" TO "{role}"',
        f'REVOKE UPDATE, DELETE, TRUNCATE ON {", ".join(APPEND_ONLY)} FROM "{role}"',
        f'REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON alembic_version FROM "{role}"',
        # The named paths that span tenants (migration 0030), and nothing else that does.
        *(f'GRANT EXECUTE ON FUNCTION {signature} TO "{role}"' for signature in CROSS_TENANT_FUNCTIONS),
    ]


def grant_app_role(connection: Connection, role: str) -> list[str]:
    """Apply ``app_role_statements`` on ``connection`` (as the owner); returns them."""
    if not role.replace("_", "").isalnum() or len(role) > 63:
        raise ValueError("a role name is letters, digits and underscores (at most 63)")
    database = connection.execute(text("SELECT current_database()")).scalar_one()
    schema = connection.execute(text("SELECT current_schema()")).scalar_one()
    statements = app_role_statements(role, database, schema)
    for statement in statements:
        connection.execute(text(statement))
    return statements
