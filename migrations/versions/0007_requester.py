"""The requester's details as submitted, kept on each ticket (issue 10).

Mail about a ticket goes to the address given for that ticket, and staff see and search
the details typed for it; the customer record a ticket links to is history only. Existing
tickets take their details from the customer record they were linked to, which is the
best record there is of what was typed before this change.

Revision ID: 0007_requester
Revises: 0006_phone_tail
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '0007_requester'
down_revision = '0006_phone_tail'
branch_labels = None
depends_on = None


def upgrade():
    # NOT NULL columns arrive with a default so that neither database rewrites or
    # rebuilds the table (SQLite could only add NOT NULL that way); the UPDATE fills them.
    op.add_column('tickets', sa.Column('requester_name', sa.String(length=200), nullable=False, server_default=''))
    op.add_column('tickets', sa.Column('requester_phone', sa.String(length=20), nullable=True))
    op.add_column('tickets', sa.Column('requester_email', sa.String(length=254), nullable=True))
    op.add_column('tickets', sa.Column('requester_locale', sa.String(length=16), nullable=False, server_default='zh_CN'))
    op.execute(
        "UPDATE tickets SET requester_name = c.name, requester_phone = c.phone, "
        "requester_email = c.email, requester_locale = c.locale "
        "FROM customers c WHERE c.tenant_id = tickets.tenant_id AND c.id = tickets.customer_id"
    )
    op.create_index(op.f('ix_tickets_tenant_id_requester_email'), 'tickets', ['tenant_id', 'requester_email'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_tickets_tenant_id_requester_email'), table_name='tickets')
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_column('requester_locale')
        batch_op.drop_column('requester_email')
        batch_op.drop_column('requester_phone')
        batch_op.drop_column('requester_name')
