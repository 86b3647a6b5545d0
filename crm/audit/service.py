"""Recording events and verifying a tenant's chain.

``record`` only queues an event on the session; the events are chained and inserted
just before the transaction commits, so they land in the same transaction as the change
they describe and the chain-head lock is held for as short a time as possible.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import event, insert, select, update
from sqlalchemy.orm import Session

from crm.audit.chain import GENESIS_HASH, check_json_value, event_body, event_hash
from crm.audit.models import AuditEvent, AuditHead
from crm.columns import utcnow
from crm.extensions import db, pending_in_transaction
from tenants import TenantContextError, current_tenant_id

PENDING_KEY = "audit_pending"


@dataclass(frozen=True)
class Actor:
    """Who did it: a staff user, a customer, the system, or the SaaS operator."""

    kind: str
    id: str | None
    label: str
    ip: str | None = None

    @classmethod
    def system(cls) -> "Actor":
        return cls("system", None, "system")

    @classmethod
    def operator(cls, label: str = "cli") -> "Actor":
        return cls("operator", None, label)


ACTOR_KIND_LABELS = {
    "user": _l("Staff"),
    "customer": _l("Customer"),
    "anonymous": _l("Anonymous"),
    "system": _l("System"),
    "operator": _l("Operator"),
}


@dataclass
class _Pending:
    tenant_id: int
    actor: Actor
    action: str
    subject_type: str
    subject_id: str | None
    data: dict[str, Any] = field(default_factory=dict)


def record(
    action: str,
    subject_type: str,
    subject_id: object | None,
    *,
    actor: Actor,
    data: dict[str, Any] | None = None,
) -> None:
    """Queue an event for the tenant in context; it is chained when the session commits."""
    tenant_id = current_tenant_id()
    if tenant_id is None:
        raise TenantContextError(f"audit event {action!r} with no tenant in context")
    data = data or {}
    check_json_value(data)
    pending_in_transaction(PENDING_KEY).append(
        _Pending(
            tenant_id=tenant_id,
            actor=actor,
            action=action,
            subject_type=subject_type,
            subject_id=None if subject_id is None else str(subject_id),
            data=data,
        )
    )


def start_chain() -> None:
    """Create the chain head of the tenant in context (once, with the tenant)."""
    db.session.add(AuditHead(seq=0, hash=GENESIS_HASH))


def install(session_class: type[Session]) -> None:
    """Chain queued events at commit; forget them on rollback (idempotent)."""
    for name, listener in (
        ("before_commit", _append_pending),
        ("after_rollback", _forget_pending),
        ("after_soft_rollback", _forget_pending_soft),
    ):
        if not event.contains(session_class, name, listener):
            event.listen(session_class, name, listener)


def _forget_pending(session: Session) -> None:
    session.info.pop(PENDING_KEY, None)


def _forget_pending_soft(session: Session, previous_transaction) -> None:
    session.info.pop(PENDING_KEY, None)


def _append_pending(session: Session) -> None:
    pending: list[_Pending] = session.info.pop(PENDING_KEY, [])
    if not pending:
        return
    session.flush()
    by_tenant: dict[int, list[_Pending]] = {}
    for item in pending:
        by_tenant.setdefault(item.tenant_id, []).append(item)
    for tenant_id, items in sorted(by_tenant.items()):
        _append(session, tenant_id, items)


def _append(session: Session, tenant_id: int, items: list[_Pending]) -> None:
    # The tenant in context at commit may be another one (or none, for the operator's
    # CLI), so these statements name the event's tenant themselves and skip the guard.
    unguarded = {"tenant_guard": False}
    # The UPDATE takes the head row's lock (on SQLite, the database write lock) before
    # anything is read, so concurrent writers queue here instead of forking the chain.
    last_seq, prev_hash = session.execute(
        update(AuditHead)
        .where(AuditHead.tenant_id == tenant_id)
        .values(seq=AuditHead.seq + len(items))
        .returning(AuditHead.seq, AuditHead.hash),
        execution_options=unguarded,
    ).one()
    occurred_at = utcnow()
    rows = []
    for seq, item in enumerate(items, start=last_seq - len(items) + 1):
        row = {
            "tenant_id": tenant_id,
            "seq": seq,
            "occurred_at": occurred_at,
            "actor_kind": item.actor.kind,
            "actor_id": item.actor.id,
            "actor_label": item.actor.label,
            "ip": item.actor.ip,
            "action": item.action,
            "subject_type": item.subject_type,
            "subject_id": item.subject_id,
            "data": item.data,
            "prev_hash": prev_hash,
        }
        prev_hash = row["hash"] = event_hash(prev_hash, event_body(**row))
        rows.append(row)
    session.execute(insert(AuditEvent), rows, execution_options=unguarded)
    session.execute(
        update(AuditHead).where(AuditHead.tenant_id == tenant_id).values(hash=prev_hash),
        execution_options=unguarded,
    )


@dataclass(frozen=True)
class ChainReport:
    """What ``verify_chain`` found: ``first_bad_seq`` is None when the chain is intact."""

    count: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.first_bad_seq is None


_VERIFY_COLUMNS = (
    AuditEvent.tenant_id,
    AuditEvent.seq,
    AuditEvent.occurred_at,
    AuditEvent.actor_kind,
    AuditEvent.actor_id,
    AuditEvent.actor_label,
    AuditEvent.ip,
    AuditEvent.action,
    AuditEvent.subject_type,
    AuditEvent.subject_id,
    AuditEvent.data,
    AuditEvent.prev_hash,
    AuditEvent.hash,
)
_BODY_FIELDS = tuple(column.key for column in _VERIFY_COLUMNS[:-1])


def verify_chain(batch: int = 5000) -> ChainReport:
    """Recompute the chain of the tenant in context, streaming it in constant memory.

    Detects a changed event (its hash no longer matches), a missing one (a gap in
    ``seq``), reordered ones (``prev_hash`` no longer links), and a truncated tail (the
    chain head says more events were written)."""
    result = db.session.execute(
        select(*_VERIFY_COLUMNS).order_by(AuditEvent.seq).execution_options(yield_per=batch)
    )
    try:
        report = _walk(row for partition in result.partitions() for row in partition)
    finally:
        result.close()
    if not report.ok:
        return report
    head = db.session.execute(select(AuditHead.seq, AuditHead.hash)).one_or_none()
    if head is not None and (head.seq != report.count or head.hash != report.head_hash):
        return ChainReport(
            report.count, report.head_hash, report.count + 1, f"chain head records {head.seq} events"
        )
    return report


def _walk(rows: Iterator) -> ChainReport:
    expected_seq, prev_hash, count = 1, GENESIS_HASH, 0
    for row in rows:
        seq = row.seq
        if seq != expected_seq:
            return ChainReport(count, prev_hash, expected_seq, f"event {expected_seq} is missing")
        if row.prev_hash != prev_hash:
            return ChainReport(count, prev_hash, seq, "does not link to the event before it")
        body = event_body(**dict(zip(_BODY_FIELDS, row[:-1], strict=True)))
        if event_hash(prev_hash, body) != row.hash:
            return ChainReport(count, prev_hash, seq, "content does not match its hash")
        prev_hash, expected_seq, count = row.hash, seq + 1, count + 1
    return ChainReport(count, prev_hash)


@dataclass(frozen=True)
class EventFilter:
    """Filters of the audit page; empty values filter nothing."""

    actor: str | None = None
    action: str | None = None
    subject_type: str | None = None
    subject_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def list_events(filters: EventFilter, before_seq: int | None, limit: int) -> list[AuditEvent]:
    """Newest first, a page of at most ``limit`` events older than ``before_seq``."""
    query = select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(limit)
    if before_seq is not None:
        query = query.where(AuditEvent.seq < before_seq)
    if filters.actor:
        term = filters.actor.strip()
        query = query.where(
            (AuditEvent.actor_id == term) | AuditEvent.actor_label.contains(term, autoescape=True)
        )
    if filters.action:
        query = query.where(AuditEvent.action.startswith(filters.action.strip(), autoescape=True))
    if filters.subject_type:
        query = query.where(AuditEvent.subject_type == filters.subject_type.strip())
    if filters.subject_id:
        query = query.where(AuditEvent.subject_id == filters.subject_id.strip())
    if filters.since:
        query = query.where(AuditEvent.occurred_at >= filters.since)
    if filters.until:
        query = query.where(AuditEvent.occurred_at < filters.until)
    return list(db.session.scalars(query))


def chain_head() -> AuditHead | None:
    return db.session.scalars(select(AuditHead)).one_or_none()
