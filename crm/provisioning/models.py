"""A tenant's own settings: what its public pages promise and how its desk is run."""

from sqlalchemy import BigInteger, Boolean, Integer, PrimaryKeyConstraint, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from crm.extensions import db
from tenants import BigIntId, TenantScoped

# The range an admin may set the idle sign-out to: 5 minutes to a day.
IDLE_MINUTES_MIN = 5
IDLE_MINUTES_MAX = 24 * 60
# MIIT: proof of consent to commercial calls is kept at least five months.
CONSENT_RETENTION_DAYS_MIN = 153


class AgentDisplay:
    """How the customer sees who answers: the agent's first name, or the team's name."""

    FIRST_NAME = "first_name"
    TEAM = "team"


class TenantSettings(TenantScoped, db.Model):
    __tablename__ = "tenant_settings"
    __table_args__ = (PrimaryKeyConstraint("tenant_id"),)

    # Ticket numbers are per tenant: RF-1001, RF-1002, … The row is locked to take one.
    ticket_prefix: Mapped[str] = mapped_column(String(8), default="RF")
    next_ticket_number: Mapped[int] = mapped_column(BigInteger, default=1001)
    form_submissions_per_hour: Mapped[int] = mapped_column(Integer, default=10)
    agent_display: Mapped[str] = mapped_column(String(16), default=AgentDisplay.FIRST_NAME)
    team_name: Mapped[str] = mapped_column(String(100), default="Customer Care")
    # ISO 3166 region used to read phone numbers typed without a country code.
    country: Mapped[str] = mapped_column(String(2), default="CN")
    privacy_notice: Mapped[str | None] = mapped_column(Text)
    # Refund approvals above this (minor units) need a second person, a manager.
    approval_threshold_minor: Mapped[int] = mapped_column(BigInteger, default=50_000)
    # Where a customer can turn if not satisfied; stated in every final response.
    outside_options_en: Mapped[str | None] = mapped_column(Text)
    outside_options_zh: Mapped[str | None] = mapped_column(Text)
    # The reason codes a refund decision may give, as lines "code | label" (None: defaults).
    refund_reasons: Mapped[str | None] = mapped_column(Text)
    # Staff sessions idle this long are signed out.
    idle_timeout_minutes: Mapped[int] = mapped_column(Integer, default=480)
    # Where customers write (support@provider.example): replies to the desk's mail reach
    # it through a plus-address naming the ticket (crm.inbound). None: no inbound mail.
    support_address: Mapped[str | None] = mapped_column(String(254))
    # The IMAP mailbox inbound mail is fetched from, imap(s)://user:password@host/INBOX,
    # sealed (crm.sealed): set with flask mail imap, read by the poller.
    imap_url_sealed: Mapped[str | None] = mapped_column(Text)
    # Whether that mailbox's server must still resolve to public addresses when polled (one
    # an admin set on the page; an operator's, set from the command line, may be private).
    imap_public_only: Mapped[bool] = mapped_column(Boolean, default=True)
    # Managers and admins must sign in with a second step (crm.auth.two_factor).
    require_two_factor: Mapped[bool] = mapped_column(Boolean, default=False)
    # Currencies accepted besides the tenant's own, as "USD,HKD" ("": only its own).
    accepted_currencies: Mapped[str] = mapped_column(String(64), default="")
    # Addresses each new audit checkpoint is mailed to, one per line (crm.audit.checkpoints).
    audit_witnesses: Mapped[str] = mapped_column(Text, default="")
    # Leads: LD-1001, LD-1002, … numbered like tickets, under the same row lock.
    lead_prefix: Mapped[str] = mapped_column(String(8), default="LD")
    next_lead_number: Mapped[int] = mapped_column(BigInteger, default=1001)
    # The trial form's promise: first contact within this many business minutes.
    first_contact_minutes: Mapped[int] = mapped_column(Integer, default=180)
    # Unanswered calls in a row after which a lead is marked unreachable.
    unreachable_after_attempts: Mapped[int] = mapped_column(Integer, default=5)
    # The consent boxes' own wording (None: the desk's default, in the page's language);
    # a change of either bumps the version stored with each proof.
    consent_contact_text: Mapped[str | None] = mapped_column(Text)
    consent_marketing_text: Mapped[str | None] = mapped_column(Text)
    consent_text_version: Mapped[int] = mapped_column(Integer, default=1)
    consent_retention_days: Mapped[int] = mapped_column(Integer, default=183)
    # Round robin: who took the last new lead.
    last_lead_assignee_id: Mapped[int | None] = mapped_column(BigIntId)
