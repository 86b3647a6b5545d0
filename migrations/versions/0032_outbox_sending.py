"""The outbox knows when a message was last handed to a sender (issue 16, fault drills 1
and 3): a message is marked ``sending`` and committed before the mail server is
spoken to, so a worker killed mid-send leaves it visibly interrupted rather than queued
(sent again) or sent (perhaps never handed over). ``last_attempt_at`` also tells the
outbox sweep which queued messages lost their job (Redis was down at the commit).

The sweep asks every tenant, so on PostgreSQL its question is a SECURITY DEFINER
function like those of 0030.

Revision ID: 0032_outbox_sending
Revises: 0031_straggler_function
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0032_outbox_sending"
down_revision = "0031_straggler_function"
branch_labels = None
depends_on = None

SIGNATURE = "ledgerdesk_stranded_outbox_messages(timestamptz, integer)"


QUEUED = "status = 'queued'"


def upgrade():
    with op.batch_alter_table("outbox_messages") as batch:
        batch.add_column(sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True))
        # Few messages wait at any time: the sweep reads them all, by this index.
        batch.create_index(
            "ix_outbox_messages_queued",
            ["created_at"],
            unique=False,
            postgresql_where=sa.text(QUEUED),
            sqlite_where=sa.text(QUEUED),
        )
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    schema = bind.exec_driver_sql("SELECT current_schema()").scalar()
    op.execute(
        f"CREATE FUNCTION {SIGNATURE} RETURNS TABLE (id bigint, tenant_id bigint) "
        f"LANGUAGE sql STABLE SECURITY DEFINER SET search_path = {schema} AS $$ "
        "SELECT m.id, m.tenant_id FROM outbox_messages m "
        "WHERE m.status = 'queued' AND COALESCE(m.last_attempt_at, m.created_at) < $1 "
        "ORDER BY COALESCE(m.last_attempt_at, m.created_at) LIMIT $2 $$"
    )
    op.execute(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION IF EXISTS {SIGNATURE}")
    with op.batch_alter_table("outbox_messages") as batch:
        batch.drop_index("ix_outbox_messages_queued", postgresql_where=sa.text(QUEUED), sqlite_where=sa.text(QUEUED))
        batch.drop_column("last_attempt_at")
