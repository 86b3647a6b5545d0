"""Webhooks: endpoints an admin adds, the events that become deliveries (in the change's
own transaction, so a rolled-back change sends nothing), and delivery: signed as the
Standard Webhooks specification says, retried with backoff for 24 hours, every attempt
logged, a receiver that fails for 24 hours disabled and the admins told.

Payloads are thin: the event, its subject with its API link, and what the audit event
says (digests, never personal data). A receiver fetches the rest with its API key.
"""

import base64
import json
import logging
import secrets
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta

from flask import render_template
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook

from crm import jobs
from crm.access import Role
from crm.audit.chain import format_instant
from crm.audit.service import Actor, record
from crm.auth.models import User
from crm.columns import utcnow
from crm.errors import DomainError, NotFound
from crm.extensions import db
from crm.leads.models import Lead
from crm.notify.models import Automatic
from crm.notify.service import queue_email
from crm.outbound import check_public_url
from crm.tickets.links import external_url
from crm.tickets.models import Ticket
from crm.webhooks.models import EVENTS, DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tenants import cache as tenant_cache
from tenants import current_tenant, spanning

log = logging.getLogger(__name__)
TIMEOUT_SECONDS = 10
GIVE_UP_AFTER = timedelta(hours=24)
# Seconds before each retry; the last one repeats until 24 hours have passed.
BACKOFF = (5, 60, 300, 1800, 7200, 18000)
EXCERPT_BYTES = 500
ENDPOINTS_KEY = "webhook_endpoints"
SWEEP_JOB_PREFIX = "ledgerdesk-webhooks-"

# Which audit events are which webhook events (a refund is decided when it needs no
# approval, or when it is approved).
AUDIT_TO_WEBHOOK = {
    "ticket.created": "ticket.created",
    "ticket.status_changed": "ticket.status_changed",
    "ticket.replied": "ticket.replied",
    "clock.warned": "sla.warning",
    "clock.breached": "sla.breached",
    "refund.decision_approved": "refund.decided",
    "refund.payout_recorded": "payout.recorded",
    "lead.created": "lead.created",
    "lead.stage_changed": "lead.stage_changed",
    "dnc.added": "dnc.added",
}


# --- endpoints ------------------------------------------------------------------------------------


def check_url(url: str) -> str:
    return check_public_url(url, "url")


def check_events(events: list[str]) -> list[str]:
    if not events or set(events) - set(EVENTS):
        raise DomainError(_l("Choose events from the list."), "events")
    return [event for event in EVENTS if event in events]


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def create_endpoint(
    url: str, events: list[str], *, actor: Actor, user: User | None = None
) -> WebhookEndpoint:
    endpoint = WebhookEndpoint(
        url=check_url(url),
        events=check_events(events),
        secret=new_secret(),
        active=True,
        created_by_id=user.id if user else None,
    )
    db.session.add(endpoint)
    db.session.flush()
    record(
        "webhook.endpoint_added",
        "webhook_endpoint",
        endpoint.id,
        actor=actor,
        data={"url": endpoint.url, "events": endpoint.events},
    )
    return endpoint


def list_endpoints() -> list[WebhookEndpoint]:
    return list(db.session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)))


def endpoint_by_id(endpoint_id: int) -> WebhookEndpoint | None:
    return db.session.get(WebhookEndpoint, endpoint_id)


def set_active(endpoint: WebhookEndpoint, active: bool, *, actor: Actor) -> None:
    if endpoint.active == active:
        return
    endpoint.active = active
    endpoint.disabled_at = None if active else utcnow()
    endpoint.failing_since = None
    record(
        "webhook.endpoint_enabled" if active else "webhook.endpoint_disabled",
        "webhook_endpoint",
        endpoint.id,
        actor=actor,
    )


def deliveries_of(
    endpoint: WebhookEndpoint, limit: int = 50
) -> list[tuple[WebhookDelivery, list[WebhookAttempt]]]:
    deliveries = list(
        db.session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == endpoint.id)
            .order_by(WebhookDelivery.id.desc())
            .limit(limit)
        )
    )
    attempts: dict[int, list[WebhookAttempt]] = {delivery.id: [] for delivery in deliveries}
    if deliveries:
        for attempt in db.session.scalars(
            select(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(attempts)).order_by(WebhookAttempt.id)
        ):
            attempts[attempt.delivery_id].append(attempt)
    return [(delivery, attempts[delivery.id]) for delivery in deliveries]


def delivery_by_id(delivery_id: int) -> WebhookDelivery | None:
    return db.session.get(WebhookDelivery, delivery_id)


def replay(delivery: WebhookDelivery, *, actor: Actor) -> None:
    """Send a delivery again now, with its own message id (a receiver that kept it drops it)."""
    endpoint = endpoint_by_id(delivery.endpoint_id)
    if endpoint is None or not endpoint.active:
        raise NotFound(_l("This endpoint is disabled: enable it first."))
    delivery.status, delivery.next_attempt_at = DeliveryStatus.PENDING, utcnow()
    record(
        "webhook.replayed",
        "webhook_delivery",
        delivery.id,
        actor=actor,
        data={"message_id": delivery.message_id},
    )
    jobs.enqueue(deliver, delivery.id)


# --- events become deliveries ---------------------------------------------------------------------


def install(session_class: type[Session]) -> None:
    """A process keeps which endpoints each tenant has while it hears of every change."""
    tenant_cache.watch(session_class, WebhookEndpoint)


def _subscribed() -> tuple[tuple[int, frozenset[str]], ...]:
    """The id and events of each of the tenant's active endpoints, read once per
    transaction, and from this process's copy when it has one (``tenants.cache``):
    every audit event asks, and most tenants have none."""
    session = db.session()
    cache = session.info.setdefault(ENDPOINTS_KEY, {})
    tenant_id = current_tenant().id
    if tenant_id not in cache:
        cache[tenant_id] = tenant_cache.cached(
            db.engine, ("webhook_endpoints", tenant_id), _active_endpoints, session=session
        )
    return cache[tenant_id]


def _active_endpoints() -> tuple[tuple[int, frozenset[str]], ...]:
    query = select(WebhookEndpoint.id, WebhookEndpoint.events).where(WebhookEndpoint.active.is_(True))
    return tuple((endpoint_id, frozenset(events)) for endpoint_id, events in db.session.execute(query))


def _subject(subject_type: str, subject_id: str | None) -> dict:
    subject = {"type": subject_type, "id": subject_id}
    if subject_id is None or not subject_id.isdigit():
        return subject
    if subject_type == "ticket":
        ticket = db.session.get(Ticket, int(subject_id))
        if ticket is not None:
            subject |= {
                "reference": ticket.reference,
                "url": external_url("api.get_ticket", number=ticket.number),
            }
    elif subject_type == "lead":
        lead = db.session.get(Lead, int(subject_id))
        if lead is not None:
            subject |= {
                "reference": lead.reference,
                "url": external_url("api.get_lead", reference=lead.reference),
            }
    return subject


def on_audit_event(action: str, subject_type: str, subject_id: str | None, data: dict) -> None:
    """An audit event being recorded: the deliveries it makes, in the same transaction;
    each is sent after the commit."""
    event = AUDIT_TO_WEBHOOK.get(action)
    if action == "refund.decision_proposed" and not data.get("needs_approval"):
        event = "refund.decided"  # final at once
    if event is None:
        return
    endpoints = [endpoint_id for endpoint_id, events in _subscribed() if event in events]
    if not endpoints:
        return
    now = utcnow()
    payload = {
        "type": event,
        "timestamp": format_instant(now),
        "data": {"subject": _subject(subject_type, subject_id), "audit": {"action": action, **data}},
    }
    for endpoint_id in endpoints:
        delivery = WebhookDelivery(
            endpoint_id=endpoint_id,
            message_id="msg_" + secrets.token_hex(12),
            event=event,
            payload=payload,
            status=DeliveryStatus.PENDING,
            attempts=0,
            next_attempt_at=now,
        )
        db.session.add(delivery)
        db.session.flush()
        jobs.enqueue(deliver, delivery.id)


# --- delivery -------------------------------------------------------------------------------------


def signed_headers(endpoint: WebhookEndpoint, delivery: WebhookDelivery, body: bytes, at: datetime) -> dict:
    return {
        "webhook-id": delivery.message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(endpoint.secret).sign(delivery.message_id, at, body.decode()),
        "Content-Type": "application/json",
        "User-Agent": "Ledgerdesk-Webhooks/1",
    }


def _post(url: str, body: bytes, headers: dict) -> tuple[int | None, bytes, str | None]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            return response.status, response.read(EXCERPT_BYTES), None
    except urllib.error.HTTPError as error:
        with error:  # the answer's connection, closed once read
            return error.code, error.read(EXCERPT_BYTES), None
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        return None, b"", type(error).__name__ + ": " + str(getattr(error, "reason", error))[:250]


def deliver(delivery_id: int) -> None:
    """One attempt at a pending delivery (a job: for the tenant that made it)."""
    delivery = db.session.get(WebhookDelivery, delivery_id, with_for_update=True)
    if delivery is None or delivery.status != DeliveryStatus.PENDING:
        return
    endpoint = endpoint_by_id(delivery.endpoint_id)
    if endpoint is None or not endpoint.active:
        return
    now = utcnow()
    body = json.dumps(delivery.payload, ensure_ascii=False, separators=(",", ":")).encode()
    try:
        check_url(endpoint.url)  # again: a name may resolve elsewhere by now
        started = time.monotonic()
        status, excerpt, error = _post(endpoint.url, body, signed_headers(endpoint, delivery, body, now))
    except DomainError as refused:
        started, status, excerpt, error = time.monotonic(), None, b"", str(refused.message)
    duration = int((time.monotonic() - started) * 1000)
    db.session.add(
        WebhookAttempt(
            delivery_id=delivery.id,
            attempted_at=now,
            status_code=status,
            duration_ms=duration,
            response_excerpt=excerpt.decode("utf-8", "replace"),
            error=error,
        )
    )
    delivery.attempts += 1
    if status is not None and 200 <= status < 300:
        delivery.status, delivery.delivered_at, delivery.next_attempt_at = DeliveryStatus.DELIVERED, now, None
        endpoint.failing_since = None
        return
    endpoint.failing_since = endpoint.failing_since or now
    wait = BACKOFF[min(delivery.attempts - 1, len(BACKOFF) - 1)]
    if now + timedelta(seconds=wait) - delivery.created_at > GIVE_UP_AFTER:
        delivery.status, delivery.next_attempt_at = DeliveryStatus.FAILED, None
    else:
        delivery.next_attempt_at = now + timedelta(seconds=wait)
    if now - endpoint.failing_since >= GIVE_UP_AFTER:
        _disable_failing(endpoint, now)


def _disable_failing(endpoint: WebhookEndpoint, now: datetime) -> None:
    endpoint.active, endpoint.disabled_at = False, now
    record(
        "webhook.endpoint_disabled",
        "webhook_endpoint",
        endpoint.id,
        actor=Actor.system(),
        data={"url": endpoint.url, "failing_since": format_instant(endpoint.failing_since)},
    )
    admins = db.session.scalars(select(User).where(User.role == Role.ADMIN, User.active.is_(True)))
    for admin in admins:
        body = render_template(
            "emails/webhook_disabled.txt", endpoint=endpoint, tenant=current_tenant(), user=admin
        )
        queue_email(
            to=admin.email,
            subject=f"Webhook disabled: {endpoint.url}"[:300],
            body=body,
            locale=admin.locale or "en",
            ticket_id=None,
            actor=Actor.system(),
            automatic=Automatic.GENERATED,
        )


DUE_BATCH = 1000


def deliver_due(now: datetime | None = None) -> int:
    """Every tenant's deliveries whose next attempt is due: one attempt each, each in its
    own transaction. How many were attempted."""
    now = now or utcnow()
    query = (
        select(WebhookDelivery.id, WebhookDelivery.tenant_id)
        .where(WebhookDelivery.status == DeliveryStatus.PENDING, WebhookDelivery.next_attempt_at <= now)
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(DUE_BATCH)
    )
    due = spanning.due_webhook_deliveries(db.session, query, now, DUE_BATCH)
    db.session.commit()
    spanning.in_their_tenants(
        db.session,
        due,
        deliver,
        failing=(Exception,),
        on_failure=lambda delivery_id: log.exception("webhook delivery %s failed", delivery_id),
    )
    return len(due)


def sweep_job() -> None:
    try:
        deliver_due()
    finally:
        schedule_sweep()


def schedule_sweep(now: datetime | None = None) -> str | None:
    return jobs.book_next_minute(sweep_job, SWEEP_JOB_PREFIX, now)
