"""Leads (issue 13): the leads, their requests, activities and consent proofs, the
trial form's used tokens, the do-not-contact list, and the tenant's lead settings.

Revision ID: 0021_leads
Revises: 0020_auditor_scope
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0021_leads"
down_revision = "0020_auditor_scope"
branch_labels = None
depends_on = None

BigIntId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade():
    op.create_table(
        "do_not_contact",
        sa.Column("id", BigIntId, nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("value", sa.String(length=254), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("added_by_id", BigIntId, nullable=True),
        sa.Column("lead_id", BigIntId, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("removed_by_id", BigIntId, nullable=True),
        sa.Column("removal_reason", sa.String(length=500), nullable=True),
        sa.Column("tenant_id", BigIntId, nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "added_by_id"],
            ["users.tenant_id", "users.id"],
            name=op.f("fk_do_not_contact_tenant_id_added_by_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "removed_by_id"],
            ["users.tenant_id", "users.id"],
            name=op.f("fk_do_not_contact_tenant_id_removed_by_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_do_not_contact_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_do_not_contact")),
        sa.UniqueConstraint("tenant_id", "id", name=op.f("uq_do_not_contact_tenant_id_id")),
    )
    with op.batch_alter_table("do_not_contact", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_do_not_contact_tenant_id_created_at_id"),
            ["tenant_id", "created_at", "id"],
            unique=False,
        )
        batch_op.create_index(
            "uq_do_not_contact_standing",
            ["tenant_id", "kind", "value"],
            unique=True,
            postgresql_where=sa.text("removed_at IS NULL"),
            sqlite_where=sa.text("removed_at IS NULL"),
        )

    op.create_table(
        "leads",
        sa.Column("id", BigIntId, nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(length=24), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("company", sa.String(length=200), nullable=True),
        sa.Column("phone", sa.String(length=20), nullable=True),
        sa.Column(
            "phone_tail",
            sa.String(length=4),
            sa.Computed("substr(phone, length(phone) - 3)", persisted=True),
            nullable=True,
        ),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("need", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("source_detail", sa.String(length=100), nullable=True),
        sa.Column("utm_source", sa.String(length=100), nullable=True),
        sa.Column("utm_medium", sa.String(length=100), nullable=True),
        sa.Column("utm_campaign", sa.String(length=100), nullable=True),
        sa.Column("locale", sa.String(length=16), nullable=False),
        sa.Column("assignee_id", BigIntId, nullable=True),
        sa.Column("customer_id", BigIntId, nullable=True),
        sa.Column("lost_reason", sa.String(length=200), nullable=True),
        sa.Column("contact_consent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("marketing_consent", sa.Boolean(), nullable=False),
        sa.Column("failed_attempts", sa.Integer(), nullable=False),
        sa.Column("first_contact_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_contacted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("trial_starts_on", sa.Date(), nullable=True),
        sa.Column("trial_ends_on", sa.Date(), nullable=True),
        sa.Column("won_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tenant_id", BigIntId, nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "assignee_id"],
            ["users.tenant_id", "users.id"],
            name=op.f("fk_leads_tenant_id_assignee_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "customer_id"],
            ["customers.tenant_id", "customers.id"],
            name=op.f("fk_leads_tenant_id_customer_id_customers"),
        ),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_leads_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_leads")),
        sa.UniqueConstraint("tenant_id", "id", name=op.f("uq_leads_tenant_id_id")),
        sa.UniqueConstraint("tenant_id", "number", name=op.f("uq_leads_tenant_id_number")),
    )
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_leads_tenant_id_assignee_id_stage_created_at_id"),
            ["tenant_id", "assignee_id", "stage", "created_at", "id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_leads_tenant_id_created_at_id"), ["tenant_id", "created_at", "id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_leads_tenant_id_customer_id"), ["tenant_id", "customer_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_leads_tenant_id_email"), ["tenant_id", "email"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_leads_tenant_id_first_contact_due_at_id"),
            ["tenant_id", "first_contact_due_at", "id"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_leads_tenant_id_phone"), ["tenant_id", "phone"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_leads_tenant_id_phone_tail"), ["tenant_id", "phone_tail"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_leads_tenant_id_stage_created_at_id"),
            ["tenant_id", "stage", "created_at", "id"],
            unique=False,
        )

    op.create_table(
        "lead_activities",
        sa.Column("id", BigIntId, nullable=False),
        sa.Column("lead_id", BigIntId, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("author_user_id", BigIntId, nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", BigIntId, nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "author_user_id"],
            ["users.tenant_id", "users.id"],
            name=op.f("fk_lead_activities_tenant_id_author_user_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "lead_id"],
            ["leads.tenant_id", "leads.id"],
            name=op.f("fk_lead_activities_tenant_id_lead_id_leads"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_lead_activities_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lead_activities")),
        sa.UniqueConstraint("tenant_id", "id", name=op.f("uq_lead_activities_tenant_id_id")),
    )
    with op.batch_alter_table("lead_activities", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_lead_activities_tenant_id_lead_id_id"),
            ["tenant_id", "lead_id", "id"],
            unique=False,
        )

    op.create_table(
        "lead_requests",
        sa.Column("id", BigIntId, nullable=False),
        sa.Column("lead_id", BigIntId, nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("need", sa.Text(), nullable=True),
        sa.Column("utm_source", sa.String(length=100), nullable=True),
        sa.Column("utm_medium", sa.String(length=100), nullable=True),
        sa.Column("utm_campaign", sa.String(length=100), nullable=True),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", BigIntId, nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "lead_id"],
            ["leads.tenant_id", "leads.id"],
            name=op.f("fk_lead_requests_tenant_id_lead_id_leads"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_lead_requests_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lead_requests")),
        sa.UniqueConstraint("tenant_id", "id", name=op.f("uq_lead_requests_tenant_id_id")),
    )
    with op.batch_alter_table("lead_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_lead_requests_tenant_id_lead_id_id"), ["tenant_id", "lead_id", "id"], unique=False
        )

    op.create_table(
        "lead_submission_uses",
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("lead_id", BigIntId, nullable=True),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", BigIntId, nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "lead_id"],
            ["leads.tenant_id", "leads.id"],
            name=op.f("fk_lead_submission_uses_tenant_id_lead_id_leads"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_lead_submission_uses_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("tenant_id", "nonce", name=op.f("pk_lead_submission_uses")),
    )
    op.create_table(
        "consents",
        sa.Column("id", BigIntId, nullable=False),
        sa.Column("lead_id", BigIntId, nullable=False),
        sa.Column("lead_request_id", BigIntId, nullable=True),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("given", sa.Boolean(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("text_version", sa.String(length=32), nullable=False),
        sa.Column("text_sha256", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.Column("evidence_ref", sa.String(length=200), nullable=True),
        sa.Column("phone", sa.String(length=20), nullable=True),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retain_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tenant_id", BigIntId, nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "lead_id"],
            ["leads.tenant_id", "leads.id"],
            name=op.f("fk_consents_tenant_id_lead_id_leads"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "lead_request_id"],
            ["lead_requests.tenant_id", "lead_requests.id"],
            name=op.f("fk_consents_tenant_id_lead_request_id_lead_requests"),
        ),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_consents_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consents")),
        sa.UniqueConstraint("tenant_id", "id", name=op.f("uq_consents_tenant_id_id")),
    )
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_consents_tenant_id_lead_id_id"), ["tenant_id", "lead_id", "id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_consents_tenant_id_phone"), ["tenant_id", "phone"], unique=False)

    with op.batch_alter_table("tenant_settings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("lead_prefix", sa.String(length=8), nullable=False, server_default="LD")
        )
        batch_op.add_column(
            sa.Column("next_lead_number", sa.BigInteger(), nullable=False, server_default="1001")
        )
        batch_op.add_column(
            sa.Column("first_contact_minutes", sa.Integer(), nullable=False, server_default="180")
        )
        batch_op.add_column(
            sa.Column("unreachable_after_attempts", sa.Integer(), nullable=False, server_default="5")
        )
        batch_op.add_column(sa.Column("consent_contact_text", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("consent_marketing_text", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("consent_text_version", sa.Integer(), nullable=False, server_default="1")
        )
        batch_op.add_column(
            sa.Column("consent_retention_days", sa.Integer(), nullable=False, server_default="183")
        )
        batch_op.add_column(sa.Column("last_lead_assignee_id", BigIntId, nullable=True))

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("takes_leads", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("takes_leads")

    with op.batch_alter_table("tenant_settings", schema=None) as batch_op:
        batch_op.drop_column("last_lead_assignee_id")
        batch_op.drop_column("consent_retention_days")
        batch_op.drop_column("consent_text_version")
        batch_op.drop_column("consent_marketing_text")
        batch_op.drop_column("consent_contact_text")
        batch_op.drop_column("unreachable_after_attempts")
        batch_op.drop_column("first_contact_minutes")
        batch_op.drop_column("next_lead_number")
        batch_op.drop_column("lead_prefix")

    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consents_tenant_id_phone"))
        batch_op.drop_index(batch_op.f("ix_consents_tenant_id_lead_id_id"))

    op.drop_table("consents")
    op.drop_table("lead_submission_uses")
    with op.batch_alter_table("lead_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lead_requests_tenant_id_lead_id_id"))

    op.drop_table("lead_requests")
    with op.batch_alter_table("lead_activities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lead_activities_tenant_id_lead_id_id"))

    op.drop_table("lead_activities")
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_leads_tenant_id_stage_created_at_id"))
        batch_op.drop_index(batch_op.f("ix_leads_tenant_id_phone_tail"))
        batch_op.drop_index(batch_op.f("ix_leads_tenant_id_phone"))
        batch_op.drop_index(batch_op.f("ix_leads_tenant_id_first_contact_due_at_id"))
        batch_op.drop_index(batch_op.f("ix_leads_tenant_id_email"))
        batch_op.drop_index(batch_op.f("ix_leads_tenant_id_customer_id"))
        batch_op.drop_index(batch_op.f("ix_leads_tenant_id_created_at_id"))
        batch_op.drop_index(batch_op.f("ix_leads_tenant_id_assignee_id_stage_created_at_id"))

    op.drop_table("leads")
    with op.batch_alter_table("do_not_contact", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_do_not_contact_standing",
            postgresql_where=sa.text("removed_at IS NULL"),
            sqlite_where=sa.text("removed_at IS NULL"),
        )
        batch_op.drop_index(batch_op.f("ix_do_not_contact_tenant_id_created_at_id"))

    op.drop_table("do_not_contact")
