"""Recording events and verifying a tenant's chain.

``record`` only queues an event on the session; the events are chained and inserted
just before the transaction commits, so they land in the same transaction as the change
they describe and the chain-head lock is held for as short a time as possible.
"""

import json
import json.scanner
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask import current_app, has_app_context
from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    DateTime,
    Text,
    bindparam,
    cast,
    delete,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from crm import jobs
from crm.audit.chain import (
    GENESIS_HASH,
    canonical_text,
    check_json_value,
    stored_event_hash,
)
from crm.audit.chainer import BackgroundChainer
from crm.audit.models import AuditEvent, AuditHead, AuditInbox
from crm.columns import UTCDateTime, utcnow
from crm.extensions import at_outermost, db, pending_in_transaction
from tenants import TenantContextError, current_tenant_id, rls, spanning

PENDING_KEY = "audit_pending"
TO_CHAIN_KEY = "audit_to_chain"
log = logging.getLogger(__name__)


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
    occurred_at: datetime = field(default_factory=utcnow)


# Called with each event as it is recorded, in the same transaction (the webhooks turn
# some events into deliveries: ``crm.webhooks.service.on_audit_event``).
RECORD_OBSERVERS: list[Callable[[str, str, str | None, dict], None]] = []


def record(
    action: str,
    subject_type: str,
    subject_id: object | None,
    *,
    actor: Actor,
    data: dict[str, Any] | None = None,
) -> None:
    """Queue an event for the tenant in context: it is written with the transaction's
    commit and chained right after."""
    tenant_id = current_tenant_id()
    if tenant_id is None:
        raise TenantContextError(f"audit event {action!r} with no tenant in context")
    data = data or {}
    check_json_value(data)
    for observer in RECORD_OBSERVERS:
        observer(action, subject_type, None if subject_id is None else str(subject_id), data)
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
    """Write queued events with the transaction, chain them after its commit, and forget
    them on rollback (idempotent)."""
    for name, listener in (
        ("before_commit", _write_pending),
        ("after_commit", _chain_after_commit),
        ("after_rollback", _forget_pending),
        ("after_soft_rollback", _forget_pending_soft),
        # (each acts only when the outermost transaction ends: crm.extensions.at_outermost)
    ):
        if not event.contains(session_class, name, listener):
            event.listen(session_class, name, listener)


@at_outermost
def _forget_pending(session: Session) -> None:
    session.info.pop(PENDING_KEY, None)
    session.info.pop(TO_CHAIN_KEY, None)


@at_outermost
def _forget_pending_soft(session: Session, previous_transaction) -> None:
    _forget_pending(session)


def _write_pending(session: Session) -> None:
    """Before commit: the events go into the inbox, in the change's own transaction. A
    plain INSERT: concurrent writers of one tenant do not wait for each other here."""
    pending: list[_Pending] = session.info.pop(PENDING_KEY, [])
    if not pending:
        return
    session.flush()
    rows = [
        {
            "tenant_id": item.tenant_id,
            "occurred_at": item.occurred_at,
            "actor_kind": item.actor.kind,
            "actor_id": item.actor.id,
            "actor_label": item.actor.label,
            "ip": item.actor.ip,
            "action": item.action,
            "subject_type": item.subject_type,
            "subject_id": item.subject_id,
            "data": item.data,
        }
        for item in pending
    ]
    # The tenant in context at commit may be another one (or none, for the operator's
    # CLI): the rows name their tenant themselves, and are written as that tenant's (row-
    # level security). A Core INSERT on the session's own connection: the same
    # transaction, without the ORM's per-statement machinery.
    connection = session.connection()
    for tenant_id in sorted({row["tenant_id"] for row in rows}):
        with rls.rows_of(tenant_id):
            connection.execute(_INBOX_INSERT, [row for row in rows if row["tenant_id"] == tenant_id])
    session.info.setdefault(TO_CHAIN_KEY, set()).update(row["tenant_id"] for row in rows)


@at_outermost
def _chain_after_commit(session: Session) -> None:
    """After commit: chain what this transaction wrote (and whatever else is waiting),
    here or, with ``AUDIT_CHAINING=background``, in the process's chainer thread.
    Should it fail, the events stay in the inbox for the next turn or the sweep."""
    tenant_ids = sorted(session.info.pop(TO_CHAIN_KEY, ()))
    if not tenant_ids:
        return
    if has_app_context() and current_app.config.get("AUDIT_CHAINING") == "background":
        BACKGROUND.submit(session.get_bind(), tenant_ids)
        return
    for tenant_id in tenant_ids:
        try:
            chain_pending(session.get_bind(), tenant_id)
        except SQLAlchemyError:
            log.exception("audit events of tenant %s wait in the inbox to be chained", tenant_id)


_INBOX = AuditInbox.__table__
_INBOX_INSERT = insert(_INBOX).inline()  # nothing read back (a single row's id, else)
_HEADS = AuditHead.__table__
_INBOX_COLUMNS = tuple(column for column in _INBOX.c if column.key not in ("id", "tenant_id"))
CHAIN_LOCK_CLASS = 0x4C44  # pg_advisory_xact_lock(class, tenant): "LD", the audit chains


def chain_pending(engine: Engine, tenant_id: int, batch: int = 5000) -> int:
    """Move the tenant's waiting events from the inbox onto its chain: give each the next
    ``seq``, link and hash it. Returns how many events this call chained.

    On PostgreSQL a chainer that finds another at work leaves at once: the one at work
    looks at the inbox again after releasing the lock, and so sees every event committed
    before the lock was refused. On SQLite chainers simply take turns."""
    chained = 0
    with engine.connect() as connection, rls.rows_of(tenant_id):
        while True:
            with connection.begin():
                if not _take_chain_lock(connection, tenant_id):
                    return chained
                while (chained_now := _chain_batch(connection, tenant_id, batch)) == batch:
                    chained += chained_now
                chained += chained_now
            # The lock is released: anything waiting now was committed by a writer
            # that may have been refused the lock while this one held it.
            still_waiting = connection.execute(_ANY_WAITING, {"tenant": tenant_id}).first()
            connection.rollback()
            if not still_waiting:
                return chained


_ANY_WAITING = select(_INBOX.c.id).where(_INBOX.c.tenant_id == bindparam("tenant")).limit(1)


# An advisory lock writes no row and no WAL: a chainer that gives up costs nothing.
_TRY_CHAIN_LOCK = text("SELECT pg_try_advisory_xact_lock(:class, :tenant)")
# SQLite: taking the database's write lock first serialises chainers.
_TAKE_WRITE_LOCK = update(_HEADS).where(_HEADS.c.tenant_id == bindparam("tenant")).values(seq=_HEADS.c.seq)


def _take_chain_lock(connection: Connection, tenant_id: int) -> bool:
    if connection.dialect.name == "postgresql":
        return connection.execute(_TRY_CHAIN_LOCK, {"class": CHAIN_LOCK_CLASS, "tenant": tenant_id}).scalar()
    connection.execute(_TAKE_WRITE_LOCK, {"tenant": tenant_id})
    return True


class _NaiveUTC(FunctionElement):
    """A UTC instant column read as a naive UTC datetime, skipping the column type's
    conversion: on PostgreSQL ``col AT TIME ZONE 'UTC'`` (an aware datetime's offset
    lookups cost more than hashing the rest of an event), elsewhere the stored value
    (SQLite stores naive UTC text)."""

    type = DateTime(timezone=False)
    inherit_cache = True


@compiles(_NaiveUTC)
def _naive_utc(element, compiler, **kw):
    return compiler.process(element.clauses, **kw)


@compiles(_NaiveUTC, "postgresql")
def _naive_utc_postgresql(element, compiler, **kw):
    return f"({compiler.process(element.clauses, **kw)} AT TIME ZONE 'UTC')"


def _as_hashed_instant(column):
    return _NaiveUTC(column).label(column.name)


def _hashed_content(table) -> tuple:
    """An event's content columns of ``table`` (inbox or chain), in the order
    ``stored_event_hash`` takes them and as it takes them: ``occurred_at`` as naive UTC
    (skipping the column type's conversion is a good part of verification's time) and
    ``data`` as its stored canonical text, never parsed."""

    def as_hashed(column):
        if column.name == "occurred_at":
            return _as_hashed_instant(column)
        if column.name == "data":
            return cast(column, Text).label("data")
        return column

    return tuple(as_hashed(table.c[column.name]) for column in _INBOX_COLUMNS)


# The waiting events as hashing needs them: hashed and moved onto the chain as stored.
_WAITING = (_INBOX.c.id, *_hashed_content(_INBOX))


# Built once, as every commit's chaining runs them (a new statement object is keyed anew).
_WAITING_BATCH = (
    select(*_WAITING)
    .where(_INBOX.c.tenant_id == bindparam("tenant"))
    .order_by(_INBOX.c.id)
    .limit(bindparam("batch"))
)
_HEAD_FOR_UPDATE = (
    select(_HEADS.c.seq, _HEADS.c.hash, _HEADS.c.chained_at)
    .where(_HEADS.c.tenant_id == bindparam("tenant"))
    .with_for_update()
)


def _chain_batch(connection: Connection, tenant_id: int, batch: int) -> int:
    waiting = connection.execute(_WAITING_BATCH, {"tenant": tenant_id, "batch": batch}).all()
    if not waiting:
        return 0
    seq, prev_hash, last_chained_at = connection.execute(_HEAD_FOR_UPDATE, {"tenant": tenant_id}).one()
    # One chaining time for the batch, never earlier than the last one: another process's
    # clock may run behind this one's.
    chained_at = utcnow()
    if last_chained_at is not None and last_chained_at > chained_at:
        chained_at = last_chained_at
    links = []
    for inbox_id, *content in waiting:
        seq += 1
        hash_ = stored_event_hash(tenant_id, seq, *content, prev_hash, chained_at)
        links.append({"id": inbox_id, "seq": seq, "prev_hash": prev_hash, "hash": hash_})
        prev_hash = hash_
    if connection.dialect.name == "postgresql":
        connection.execute(
            _MOVE_TO_CHAIN,
            {
                "tenant": tenant_id,
                "ids": [link["id"] for link in links],
                "seqs": [link["seq"] for link in links],
                "prev_hashes": [link["prev_hash"] for link in links],
                "hashes": [link["hash"] for link in links],
                "head_seq": seq,
                "head_hash": prev_hash,
                "chained_at": chained_at,
            },
        )
    else:
        connection.execute(
            _COPY_TO_CHAIN, [{**link, "tenant": tenant_id, "chained_at": chained_at} for link in links]
        )
        connection.execute(
            delete(_INBOX).where(
                _INBOX.c.tenant_id == tenant_id, _INBOX.c.id.in_([link["id"] for link in links])
            )
        )
        connection.execute(
            update(_HEADS)
            .where(_HEADS.c.tenant_id == tenant_id)
            .values(seq=seq, hash=prev_hash, chained_at=chained_at)
        )
    return len(links)


_CONTENT = ", ".join(column.name for column in _INBOX_COLUMNS)
# The rows are copied inside the database, so each event's ``data`` lands on the chain
# byte for byte as it was hashed. PostgreSQL: one statement moves the batch and advances
# the head; elsewhere an INSERT … SELECT per event, then the DELETE and the UPDATE.
_MOVE_TO_CHAIN = text(f"""
WITH links AS (
    SELECT * FROM unnest(CAST(:ids AS bigint[]), CAST(:seqs AS bigint[]),
                         CAST(:prev_hashes AS text[]), CAST(:hashes AS text[]))
        AS link(id, seq, prev_hash, hash)
), moved AS (
    DELETE FROM audit_inbox USING links
    WHERE audit_inbox.id = links.id AND audit_inbox.tenant_id = :tenant
    RETURNING audit_inbox.tenant_id, links.seq, {", ".join(f"audit_inbox.{c.name}" for c in _INBOX_COLUMNS)},
              links.prev_hash, links.hash
), head AS (
    UPDATE audit_heads SET seq = :head_seq, hash = :head_hash, chained_at = :chained_at
    WHERE tenant_id = :tenant
)
INSERT INTO audit_events (tenant_id, seq, {_CONTENT}, prev_hash, hash, chained_at)
SELECT tenant_id, seq, {_CONTENT}, prev_hash, hash, :chained_at FROM moved
""").bindparams(bindparam("chained_at", type_=UTCDateTime))
_COPY_TO_CHAIN = text(f"""
INSERT INTO audit_events (tenant_id, seq, {_CONTENT}, prev_hash, hash, chained_at)
SELECT tenant_id, :seq, {_CONTENT}, :prev_hash, :hash, :chained_at FROM audit_inbox
WHERE id = :id AND tenant_id = :tenant
""").bindparams(bindparam("chained_at", type_=UTCDateTime))


BACKGROUND = BackgroundChainer(chain_pending)

# Events left in the inbox this long (their process died between commit and chaining)
# are chained by the minute job or ``flask audit chain --waiting``.
STRAGGLER_AGE = timedelta(seconds=30)
CHAIN_JOB_PREFIX = "ledgerdesk-audit-chain-"


def chain_stragglers(engine: Engine, older_than: timedelta = STRAGGLER_AGE) -> dict[int, int]:
    """Chain, for every tenant, events that have waited in the inbox longer than
    ``older_than``: how many were chained, by tenant id. Normally none wait that long."""
    cutoff = utcnow() - older_than
    query = (
        select(_INBOX.c.tenant_id)
        .where(_INBOX.c.occurred_at < cutoff)
        .group_by(_INBOX.c.tenant_id)
        .order_by(_INBOX.c.tenant_id)
    )
    with engine.connect() as connection:
        tenant_ids = spanning.straggler_tenants(connection, query, cutoff)
    return {tenant_id: chain_pending(engine, tenant_id) for tenant_id in tenant_ids}


def chain_stragglers_job() -> None:
    """The rq job: chain what has waited too long, then book the next minute's run."""
    try:
        chained = chain_stragglers(db.engine)
        if chained:
            log.warning("audit: chained events left waiting in the inbox: %s", chained)
    finally:
        schedule_chain_stragglers()


def schedule_chain_stragglers(now: datetime | None = None) -> str | None:
    return jobs.book_next_minute(chain_stragglers_job, CHAIN_JOB_PREFIX, now)


def waiting_count() -> int:
    """Events of the tenant in context written but not chained yet (normally none)."""
    return db.session.scalar(select(func.count()).select_from(AuditInbox)) or 0


@dataclass(frozen=True)
class ChainReport:
    """What ``verify_chain`` found: ``first_bad_seq`` is None when the chain is intact."""

    count: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str | None = None
    # Events whose ``occurred_at`` is earlier than the event's before them, and the largest
    # such step. Not a break: events are chained in the order their transactions commit,
    # so concurrent changes step back by up to a transaction's length; a step of minutes
    # means a server's clock was set back. ``chained_at`` never goes back.
    clock_steps_back: int = 0
    largest_step_back: timedelta = timedelta()

    @property
    def ok(self) -> bool:
        return self.first_bad_seq is None


VERIFY_COLUMNS = (
    AuditEvent.tenant_id,
    AuditEvent.seq,
    *_hashed_content(AuditEvent.__table__),
    AuditEvent.prev_hash,
    _as_hashed_instant(AuditEvent.chained_at),
    AuditEvent.hash,
)


def verify_chain(batch: int = 5000) -> ChainReport:
    """Recompute the chain of the tenant in context, streaming it in constant memory.

    Detects a changed event (its hash no longer matches), a missing one (a gap in
    ``seq``), reordered ones (``prev_hash`` no longer links), a truncated tail (the chain
    head says more events were written), and a head that was deleted or moved back
    (events are stored beyond it). Every stored event is read; events found beyond the
    head read first are accepted only if the head, read again, now covers them: they
    were appended while this ran."""
    first_head = _read_head()
    # A Core statement on the session's connection, scoped to the tenant here: the ORM's
    # per-row result processing cost more than the hashing.
    result = db.session.connection().execute(
        select(*VERIFY_COLUMNS)
        .where(AuditEvent.tenant_id == current_tenant_id())
        .order_by(AuditEvent.seq)
        .execution_options(yield_per=batch)
    )
    try:
        report = _walk(result.partitions())
    finally:
        result.close()
    if not report.ok:
        return report
    head = first_head
    if head is None or report.count > head.seq:
        head = _read_head()
        if head is not None and head.seq > report.count >= (first_head.seq if first_head else 0):
            return report  # the chain grew while it was read: what was read links and verifies
    if head is None:
        if report.count:
            return ChainReport(
                0, GENESIS_HASH, 1, f"the chain head is missing but {report.count} events are stored"
            )
        return report
    if report.count > head.seq:
        return ChainReport(
            head.seq,
            report.head_hash,
            head.seq + 1,
            f"{report.count - head.seq} events are stored after the chain head (head records {head.seq})",
        )
    if report.count != head.seq or report.head_hash != head.hash:
        return ChainReport(
            report.count, report.head_hash, report.count + 1, f"chain head records {head.seq} events"
        )
    return report


def _read_head():
    return db.session.execute(select(AuditHead.seq, AuditHead.hash)).one_or_none()


def _walk(partitions: Iterator) -> ChainReport:
    expected_seq, prev_hash, count, last_chained_at = 1, GENESIS_HASH, 0, None
    last_occurred_at, steps_back, largest = None, 0, timedelta()
    for partition in partitions:
        non_canonical = _non_canonical([row[10] for row in partition])
        for index, row in enumerate(partition):
            *body, stored_hash = row
            seq, stored_prev_hash, chained_at = body[1], body[11], body[12]
            if seq != expected_seq:
                return ChainReport(count, prev_hash, expected_seq, f"event {expected_seq} is missing")
            if stored_prev_hash != prev_hash:
                return ChainReport(count, prev_hash, seq, "does not link to the event before it")
            if last_chained_at is not None and (chained_at is None or chained_at < last_chained_at):
                return ChainReport(count, prev_hash, seq, "chained earlier than the event before it")
            last_chained_at = chained_at or last_chained_at
            occurred_at = body[_OCCURRED_AT]
            if last_occurred_at is not None and occurred_at < last_occurred_at:
                steps_back += 1
                largest = max(largest, last_occurred_at - occurred_at)
            last_occurred_at = occurred_at
            if index in non_canonical:
                return ChainReport(count, prev_hash, seq, "data is not a canonical JSON object")
            if stored_event_hash(*body) != stored_hash:
                return ChainReport(count, prev_hash, seq, "content does not match its hash")
            prev_hash, expected_seq, count = stored_hash, seq + 1, count + 1
    return ChainReport(count, prev_hash, clock_steps_back=steps_back, largest_step_back=largest)


# Where ``occurred_at`` is in a row of VERIFY_COLUMNS (after tenant_id and seq).
_OCCURRED_AT = 2 + [column.name for column in _INBOX_COLUMNS].index("occurred_at")


def _non_canonical(texts: list[str]) -> set[int]:
    """The positions of ``data`` texts that are not exactly the canonical JSON of an
    object: re-encoded, with a duplicate key (parsing keeps one, so the text differs), or
    not an object. Each text must parse whole as one object; the objects are then
    written canonically in one call and compared with the texts joined the same way.
    Equal joins mean equal texts: a text that is one whole object cannot be a proper
    prefix of another such text. Only a batch that fails is checked text by text."""
    values = []
    for stored in texts:
        try:
            value, end = _SCAN_JSON(stored, 0)
        except (StopIteration, ValueError):
            break
        if end != len(stored) or type(value) is not dict:
            break
        values.append(value)
    else:
        if canonical_text(values) == f"[{','.join(texts)}]":
            return set()
    return {index for index, stored in enumerate(texts) if not _is_canonical_object(stored)}


def _is_canonical_object(stored: str) -> bool:
    try:
        value = json.loads(stored)
    except ValueError:
        return False
    return isinstance(value, dict) and canonical_text(value) == stored


# The C scanner json.loads uses, without its per-call checks: verification calls it
# once per event.
_SCAN_JSON = json.scanner.make_scanner(json.JSONDecoder())


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
