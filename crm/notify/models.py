"""The outbox."""

import enum
from datetime import datetime, timedelta

from sqlalchemy import Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from crm.columns import UTCDateTime, utcnow
from crm.extensions import db
from tenants import BigIntId, TenantScoped, tenant_fk

# Where a customer's tracking link goes in a stored message. The outbox never holds a
# usable link: the sending job mints one and puts it here only in what it hands to the
# mail server, so nobody reading a held or queued message can act as the customer.
TRACKING_LINK_SLOT = "[tracking-link]"
# Likewise a staff member's password-reset link (crm.auth.resets).
RESET_LINK_SLOT = "[password-reset-link]"
# A send takes seconds (20 s timeout per SMTP step); one still "sending" after this was
# interrupted.
SENDING_STALLED = timedelta(minutes=10)


class OutboxStatus(enum.StrEnum):
    QUEUED = "queued"  # waiting for the sending job
    HELD = "held"  # no SMTP_URL: kept here, shown on the admin outbox page
    # Being handed to the mail server. Committed before the server is spoken to, so a
    # worker killed mid-send leaves the message here, never queued (it would go twice)
    # nor sent (it may never have reached the server); after SENDING_STALLED it shows as
    # interrupted, for an admin to check and send again.
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"  # retries exhausted


class Automatic(enum.StrEnum):
    """RFC 3834's Auto-Submitted: mail the desk sends by itself says so, so that the
    recipient's autoresponder (an out-of-office) does not answer it; mail a person
    wrote (a staff reply) carries no such header."""

    GENERATED = "auto-generated"  # not in answer to a message: a receipt, a notice
    REPLIED = "auto-replied"  # the receipt of an emailed request


QUEUED = "status = 'queued'"


class OutboxMessage(TenantScoped, db.Model):
    __tablename__ = "outbox_messages"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        tenant_fk(["ticket_id"], "tickets"),
        Index(None, "tenant_id", "created_at"),
        Index(None, "tenant_id", "status"),
        Index(None, "tenant_id", "message_id"),
        Index(
            "ix_outbox_messages_queued",
            "created_at",
            postgresql_where=text(QUEUED),
            sqlite_where=text(QUEUED),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(BigIntId)
    to_address: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    locale: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The Message-ID it was sent with: a reply's In-Reply-To finds the ticket by it.
    message_id: Mapped[str | None] = mapped_column(String(250))
    # Its Auto-Submitted header (an Automatic); none for what a person wrote.
    auto_submitted: Mapped[str | None] = mapped_column(String(20))

    def interrupted(self, now: datetime) -> bool:
        """Left ``sending`` by a sender that never finished (killed, or its host lost)."""
        return (
            self.status == OutboxStatus.SENDING
            and self.last_attempt_at is not None
            and now - self.last_attempt_at > SENDING_STALLED
        )

    @property
    def readable_body(self) -> str:
        return readable(self.body)


def readable(body: str) -> str:
    """An outbox body as staff may read it: the link's place marked, not filled."""
    return body.replace(TRACKING_LINK_SLOT, "[…]").replace(RESET_LINK_SLOT, "[…]")
