"""The requester's details as submitted, kept on each ticket (issue 10), and the true
time of receipt of a request staff logged late (issue 11).

Mail about a ticket goes to the address given for that ticket, and staff see and search
the details typed for it; the customer record a ticket links to is history only. Existing
tickets take their details from the customer record they were linked to, which is the
best record there is of what was typed before this change.

Held and queued mail stops holding a usable tracking link (see crm.notify.models).

Revision ID: 0007_requester
Revises: 0006_phone_tail
Create Date: 2026-12-03
"""

import re

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0007_requester"
down_revision = "0006_phone_tail"
branch_labels = None
depends_on = None


def upgrade():
    # NOT NULL columns arrive with a default so that neither database rewrites or
    # rebuilds the table (SQLite could only add NOT NULL that way); the UPDATE fills them.
    op.add_column(
        "tickets", sa.Column("requester_name", sa.String(length=200), nullable=False, server_default="")
    )
    op.add_column("tickets", sa.Column("received_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("tickets", sa.Column("requester_phone", sa.String(length=20), nullable=True))
    op.add_column("tickets", sa.Column("requester_email", sa.String(length=254), nullable=True))
    op.add_column(
        "tickets", sa.Column("requester_locale", sa.String(length=16), nullable=False, server_default="zh_CN")
    )
    op.execute(
        "UPDATE tickets SET requester_name = c.name, requester_phone = c.phone, "
        "requester_email = c.email, requester_locale = c.locale "
        "FROM customers c WHERE c.tenant_id = tickets.tenant_id AND c.id = tickets.customer_id"
    )
    op.create_index(
        op.f("ix_tickets_tenant_id_requester_email"),
        "tickets",
        ["tenant_id", "requester_email"],
        unique=False,
    )
    _slot_links_in_waiting_mail()


# Values as of this revision, written out so later app code cannot change this migration.
TRACKING_LINK = re.compile(r"\S*/track/[A-Za-z0-9_-]+")
TRACKING_LINK_SLOT = "[tracking-link]"


def _slot_links_in_waiting_mail():
    """Held and queued mail stops holding a usable tracking link: the link becomes the
    slot the sending job fills with a new one."""
    outbox = sa.table("outbox_messages", sa.column("id"), sa.column("body"), sa.column("status"))
    connection = op.get_bind()
    waiting = connection.execute(
        sa.select(outbox.c.id, outbox.c.body).where(outbox.c.status.in_(("held", "queued")))
    ).all()
    for message_id, body in waiting:
        slotted = TRACKING_LINK.sub(TRACKING_LINK_SLOT, body)
        if slotted != body:
            connection.execute(outbox.update().where(outbox.c.id == message_id).values(body=slotted))


def downgrade():
    op.drop_index(op.f("ix_tickets_tenant_id_requester_email"), table_name="tickets")
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_column("requester_locale")
        batch_op.drop_column("requester_email")
        batch_op.drop_column("requester_phone")
        batch_op.drop_column("requester_name")
        batch_op.drop_column("received_at")
