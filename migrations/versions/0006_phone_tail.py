"""Customers' phone tails: the last four digits of each phone number, a generated column
with an index, so a search by the end of a number reads its few candidates instead of
every customer of the tenant. On PostgreSQL adding a stored generated column rewrites
the table: on a desk with millions of customers, run it in a quiet hour.

Revision ID: 0006_phone_tail
Revises: 0005_refunds
Create Date: 2026-11-28
"""
from alembic import op


# Written out, never imported from crm: a later change to the app must not change what
# this migration creates. crm.customers.models.PHONE_TAIL declared the same expression.
PHONE_TAIL = "substr(phone, length(phone) - 3)"

# revision identifiers, used by Alembic.
revision = '0006_phone_tail'
down_revision = '0005_refunds'
branch_labels = None
depends_on = None


def upgrade():
    # PostgreSQL keeps generated columns STORED; SQLite can add one to an existing table
    # only as VIRTUAL (computed when read, and indexable all the same).
    kind = "STORED" if op.get_bind().dialect.name == "postgresql" else "VIRTUAL"
    op.execute(f"ALTER TABLE customers ADD COLUMN phone_tail VARCHAR(4) GENERATED ALWAYS AS ({PHONE_TAIL}) {kind}")
    op.create_index(op.f('ix_customers_tenant_id_phone_tail'), 'customers', ['tenant_id', 'phone_tail'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_customers_tenant_id_phone_tail'), table_name='customers')
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_column('phone_tail')
