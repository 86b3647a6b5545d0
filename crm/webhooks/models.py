"""Webhook endpoints, deliveries (one per event and endpoint) and their attempts."""

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from crm.columns import UTCDateTime, utcnow
from crm.extensions import db
from tenants import BigIntId, TenantScoped, tenant_fk

EVENTS = (
    "ticket.created",
    "ticket.status_changed",
    "ticket.replied",
    "sla.warning",
    "sla.breached",
    "refund.decided",
    "payout.recorded",
    "lead.created",
    "lead.stage_changed",
    "dnc.added",
)


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for its next attempt
    DELIVERED = "delivered"
    FAILED = "failed"  # gave up after 24 hours


class WebhookEndpoint(TenantScoped, db.Model):
    __tablename__ = "webhook_endpoints"
    __table_args__ = (UniqueConstraint("tenant_id", "id"), tenant_fk(["created_by_id"], "users"))

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    url: Mapped[str] = mapped_column(String(500))
    events: Mapped[list[str]] = mapped_column(JSON)
    # The signing secret, "whsec_" and base64 (Standard Webhooks); the receiver holds it too.
    secret: Mapped[str] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Since when every delivery has failed; after 24 hours the endpoint is disabled.
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by_id: Mapped[int | None] = mapped_column(BigIntId)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookDelivery(TenantScoped, db.Model):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        tenant_fk(["endpoint_id"], "webhook_endpoints"),
        Index(None, "tenant_id", "endpoint_id", "id"),
        # The retry sweep: only deliveries still waiting are in it.
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(BigIntId)
    # The message id: the same on every attempt, so a receiver can drop repeats.
    message_id: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebhookAttempt(TenantScoped, db.Model):
    __tablename__ = "webhook_attempts"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        tenant_fk(["delivery_id"], "webhook_deliveries"),
        Index(None, "tenant_id", "delivery_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(BigIntId)
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[int] = mapped_column(Integer)
    response_excerpt: Mapped[str] = mapped_column(Text, default="")  # the first bytes
    error: Mapped[str | None] = mapped_column(String(300))
