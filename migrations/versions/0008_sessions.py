"""Server-side sessions, idle timeout, lockout per email and address (issue 10)

Staff sessions become rows the cookie points at (logout and idling end them); failed
sign-ins are counted per email *and* source address, and per address alone; tenants set
their idle timeout and the currencies they accept on refunds. The old per-email throttle
rows are dropped with their table: they only hold counts of the last 15 minutes.

Revision ID: 0008_sessions
Revises: 0007_requester
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0008_sessions'
down_revision = '0007_requester'
branch_labels = None
depends_on = None

BigIntId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f(f"fk_{table}_tenant_id_tenants"))


def failure_columns() -> list[sa.Column]:
    return [
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
    ]


def upgrade():
    op.create_table(
        "staff_sessions",
        sa.Column("tenant_id", BigIntId, nullable=False),
        sa.Column("id", BigIntId, nullable=False),
        sa.Column("user_id", BigIntId, nullable=False),
        sa.Column("secret_digest", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_reason", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id", "user_id"],
            ["users.tenant_id", "users.id"],
            name=op.f("fk_staff_sessions_tenant_id_user_id_users"),
        ),
        tenant_fk("staff_sessions"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_sessions")),
        sa.UniqueConstraint("tenant_id", "secret_digest", name=op.f("uq_staff_sessions_tenant_id_secret_digest")),
    )
    op.create_index(
        op.f("ix_staff_sessions_tenant_id_user_id"), "staff_sessions", ["tenant_id", "user_id"], unique=False
    )

    op.drop_table("login_throttles")
    op.create_table(
        "login_throttles",
        sa.Column("tenant_id", BigIntId, nullable=False),
        sa.Column("email_digest", sa.String(length=64), nullable=False),
        sa.Column("source_digest", sa.String(length=64), nullable=False),
        *failure_columns(),
        tenant_fk("login_throttles"),
        sa.PrimaryKeyConstraint("tenant_id", "email_digest", "source_digest", name=op.f("pk_login_throttles")),
    )
    op.create_table(
        "login_source_throttles",
        sa.Column("tenant_id", BigIntId, nullable=False),
        sa.Column("source_digest", sa.String(length=64), nullable=False),
        *failure_columns(),
        tenant_fk("login_source_throttles"),
        sa.PrimaryKeyConstraint("tenant_id", "source_digest", name=op.f("pk_login_source_throttles")),
    )

    with op.batch_alter_table("tenant_settings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("idle_timeout_minutes", sa.Integer(), nullable=False, server_default="480"))
        batch_op.add_column(sa.Column("accepted_currencies", sa.String(length=64), nullable=False, server_default=""))


def downgrade():
    with op.batch_alter_table("tenant_settings", schema=None) as batch_op:
        batch_op.drop_column("accepted_currencies")
        batch_op.drop_column("idle_timeout_minutes")

    op.drop_table("login_source_throttles")
    op.drop_table("login_throttles")
    op.create_table(
        "login_throttles",
        sa.Column("tenant_id", BigIntId, nullable=False),
        sa.Column("email_digest", sa.String(length=64), nullable=False),
        *failure_columns(),
        tenant_fk("login_throttles"),
        sa.PrimaryKeyConstraint("tenant_id", "email_digest", name=op.f("pk_login_throttles")),
    )

    op.drop_index(op.f("ix_staff_sessions_tenant_id_user_id"), table_name="staff_sessions")
    op.drop_table("staff_sessions")
