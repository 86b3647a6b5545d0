"""The chain heads guard themselves, and events record when they were chained (issue 12).

A head is never deleted, never moved back and never handed to another tenant, so
cutting a chain's tail takes disabling triggers, not one UPDATE; ``audit verify`` still
checks the head against the events. ``chained_at`` (hashed with the event from now on,
never earlier than the event before it) makes the order of chaining checkable, so an
event forged later cannot pass for an old one; the head keeps the last one.

Revision ID: 0016_audit_heads_guard
Revises: 0015_exports
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0016_audit_heads_guard"
down_revision = "0015_exports"
branch_labels = None
depends_on = None

PG_GUARD = """
CREATE FUNCTION audit_heads_only_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.seq >= OLD.seq AND NEW.tenant_id = OLD.tenant_id THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_heads only move forward: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_heads_only_forward BEFORE UPDATE OR DELETE ON audit_heads
    FOR EACH ROW EXECUTE FUNCTION audit_heads_only_forward();
CREATE TRIGGER audit_heads_no_truncate BEFORE TRUNCATE ON audit_heads
    FOR EACH STATEMENT EXECUTE FUNCTION audit_heads_only_forward();
"""
SQLITE_GUARD = (
    "CREATE TRIGGER audit_heads_no_move_back BEFORE UPDATE ON audit_heads "
    "WHEN NEW.seq < OLD.seq OR NEW.tenant_id <> OLD.tenant_id "
    "BEGIN SELECT RAISE(ABORT, 'audit_heads only move forward: UPDATE refused'); END",
    "CREATE TRIGGER audit_heads_no_delete BEFORE DELETE ON audit_heads "
    "BEGIN SELECT RAISE(ABORT, 'audit_heads only move forward: DELETE refused'); END",
)


def upgrade():
    for table in ("audit_events", "audit_heads"):
        op.add_column(table, sa.Column("chained_at", sa.DateTime(timezone=True), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_GUARD)
    else:
        for statement in SQLITE_GUARD:
            op.execute(statement)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_heads_no_truncate ON audit_heads")
        op.execute("DROP TRIGGER audit_heads_only_forward ON audit_heads")
        op.execute("DROP FUNCTION audit_heads_only_forward()")
    else:
        op.execute("DROP TRIGGER audit_heads_no_delete")
        op.execute("DROP TRIGGER audit_heads_no_move_back")
    # Plain ALTER TABLE on SQLite too (3.35+): a batch copy would drop the events
    # table's append-only triggers with the old table.
    for table in ("audit_heads", "audit_events"):
        op.execute(f"ALTER TABLE {table} DROP COLUMN chained_at")
