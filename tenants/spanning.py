"""The questions the app asks of every tenant at once, and only these: the SLA sweep's
due clocks, an API key by its digest, due webhook deliveries, the tenants with audit
events left waiting, queued mail whose job was lost, the tenants with a mailbox to poll.
On PostgreSQL each is a SECURITY DEFINER function (migrations 0030 to 0032, 0039), since
the application role, bound by row-level security, sees one tenant at a time; on SQLite,
a query past the guard.
"""

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Select, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from tenants.context import tenant_context
from tenants.models import Tenant


def _postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def due_clocks(
    session: Session, query: Select, now: datetime, after: tuple[datetime, int] | None, limit: int
) -> list:
    """(check_at, clock id, tenant id) of the next clocks due by ``now`` after ``after``;
    ``query`` is the same question for SQLite."""
    if not _postgresql(session):
        return session.execute(query, execution_options={"tenant_guard": False}).all()
    after_at, after_id = after or (None, None)
    return session.execute(
        text("SELECT check_at, id, tenant_id FROM ledgerdesk_due_clocks(:now, :after_at, :after_id, :limit)"),
        {"now": now, "after_at": after_at, "after_id": after_id, "limit": limit},
    ).all()


def api_key_row(session: Session, query: Select, digest: str) -> dict[str, Any] | None:
    """The API key with this digest, as its columns, in whichever tenant it is."""
    if not _postgresql(session):
        row = session.execute(query, execution_options={"tenant_guard": False}).scalars().one_or_none()
        return None if row is None else {column.key: getattr(row, column.key) for column in row.__table__.c}
    found = session.execute(text("SELECT * FROM ledgerdesk_api_key(:digest)"), {"digest": digest}).mappings()
    row = found.one_or_none()
    return dict(row) if row is not None else None


def due_webhook_deliveries(session: Session, query: Select, now: datetime, limit: int) -> list:
    """(delivery id, tenant id) of deliveries whose next attempt is due by ``now``."""
    if not _postgresql(session):
        return session.execute(query, execution_options={"tenant_guard": False}).all()
    return session.execute(
        text("SELECT id, tenant_id FROM ledgerdesk_due_webhook_deliveries(:now, :limit)"),
        {"now": now, "limit": limit},
    ).all()


def stranded_outbox_messages(session: Session, query: Select, before: datetime, limit: int) -> list:
    """(message id, tenant id) of queued messages last tried, or written, before ``before``."""
    if not _postgresql(session):
        return session.execute(query, execution_options={"tenant_guard": False}).all()
    return session.execute(
        text("SELECT id, tenant_id FROM ledgerdesk_stranded_outbox_messages(:before, :limit)"),
        {"before": before, "limit": limit},
    ).all()


def imap_tenants(session: Session, query: Select) -> list[int]:
    """The tenants with an IMAP mailbox to fetch inbound mail from."""
    if not _postgresql(session):
        return list(session.scalars(query, execution_options={"tenant_guard": False}))
    return list(session.scalars(text("SELECT ledgerdesk_imap_tenants()")))


def straggler_tenants(connection: Connection, query: Select, cutoff: datetime) -> list[int]:
    """The tenants with audit events waiting in the inbox since before ``cutoff``."""
    if connection.dialect.name != "postgresql":
        return list(connection.scalars(query))
    return list(connection.scalars(text("SELECT ledgerdesk_straggler_tenants(:cutoff)"), {"cutoff": cutoff}))


def in_their_tenants(
    session: Session,
    rows: list,
    work: Callable[[int], Any],
    *,
    failing: tuple[type[Exception], ...],
    on_failure: Callable[[int], Any] = lambda item_id: None,
) -> None:
    """``work(item id)`` for each (item id, tenant id) that one of these questions found,
    in the item's tenant (active ones only), each in a transaction of its own: an error of
    the ``failing`` kinds rolls back that item alone, and ``on_failure`` hears of it."""
    for item_id, tenant_id in rows:
        tenant = session.get(Tenant, tenant_id)
        if tenant is None or not tenant.is_active:
            continue
        with tenant_context(tenant):
            try:
                work(item_id)
                session.commit()
            except failing:
                session.rollback()
                on_failure(item_id)
