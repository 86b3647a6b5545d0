"""The events table and the per-tenant chain head that serialises appends."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, PrimaryKeyConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from crm.columns import UTCDateTime
from crm.extensions import db
from tenants import BigIntId, TenantScoped


class EventContent:
    """What an event says: the columns an inbox row and a chained event share."""

    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str | None] = mapped_column(String(64))
    actor_label: Mapped[str] = mapped_column(String(200))
    ip: Mapped[str | None] = mapped_column(String(45))
    action: Mapped[str] = mapped_column(String(64))
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


class AuditEvent(EventContent, TenantScoped, db.Model):
    """One link of a tenant's chain. Never updated or deleted (PostgreSQL triggers refuse
    it); personal data stays out of ``data``, which holds ids and digests."""

    __tablename__ = "audit_events"
    __table_args__ = (
        PrimaryKeyConstraint("tenant_id", "seq"),
        Index(None, "tenant_id", "action", "seq"),
        Index(None, "tenant_id", "actor_id", "seq"),
        Index(None, "tenant_id", "subject_type", "subject_id", "seq"),
        Index(None, "tenant_id", "occurred_at"),
    )

    seq: Mapped[int] = mapped_column(BigInteger)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    # When the event was chained (hashed): never earlier than the event before it. NULL
    # only on events chained before the column existed.
    chained_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditHead(TenantScoped, db.Model):
    """The last ``seq`` and ``hash`` of a tenant's chain. Its row is the lock that
    serialises appends; the events table's primary key is the backstop."""

    __tablename__ = "audit_heads"
    __table_args__ = (PrimaryKeyConstraint("tenant_id"),)

    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    hash: Mapped[str] = mapped_column(String(64))
    chained_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditInbox(EventContent, TenantScoped, db.Model):
    """Events written by a transaction, waiting to be chained.

    The change's transaction inserts here — a plain INSERT, no lock shared with other
    writers — and right after its commit the events are chained into ``audit_events``
    under the tenant's chain lock, many transactions' events in one go."""

    __tablename__ = "audit_inbox"
    __table_args__ = (Index(None, "tenant_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)


class AuditMerkleBlock(TenantScoped, db.Model):
    """The Merkle subtree root of a complete, aligned block of a tenant's events (see
    ``crm.audit.proofs``): derived from the chain and never trusted by a verifier (a
    wrong one only gives proofs that fail), kept so that roots and proofs over a long
    chain read a block's hash instead of its thousand events."""

    __tablename__ = "audit_merkle_blocks"
    __table_args__ = (PrimaryKeyConstraint("tenant_id", "block"),)

    block: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpoint(TenantScoped, db.Model):
    """A signed statement of a tenant's chain: its size, head and Merkle root at a
    time. Never updated or deleted (triggers refuse it); ``crm.audit.checkpoints``."""

    __tablename__ = "audit_checkpoints"
    __table_args__ = (PrimaryKeyConstraint("tenant_id", "tree_size"),)

    tree_size: Mapped[int] = mapped_column(BigInteger)
    head_hash: Mapped[str] = mapped_column(String(64))
    root: Mapped[str] = mapped_column(String(64))
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    key_id: Mapped[str] = mapped_column(String(16))
    signature: Mapped[str] = mapped_column(String(100))
