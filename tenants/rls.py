"""The database's copy of the guard (PostgreSQL row-level security).

Every tenant-owned table has a policy (migration 0029) that lets a row be read or written
only when its ``tenant_id`` equals the transaction's setting ``ledgerdesk.tenant_id``.
Here each transaction is given that setting: before a statement runs, if the tenant in
context is not the one the transaction already carries, ``set_config(..., true)`` sets
it for the rest of the transaction (sent with the transaction's BEGIN when it is the
first statement, else in a round trip of its own). With no
tenant in context the setting is empty, and tenant tables read as empty to a role the
policies apply to.

The policies bind a role without BYPASSRLS that does not own the tables: the application
role ``flask db grant-app-role`` sets up (docs/operations.md). The owner, which runs
migrations, is not bound by them.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import psycopg
from psycopg import errors, pq
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import Pool

from tenants.context import current_tenant_id

SETTING = "ledgerdesk.tenant_id"
# Set by ``rows_of``: the tenant whose rows the code inside writes, whatever is in context.
_rows_of: ContextVar[int | None] = ContextVar("ledgerdesk_rows_of", default=None)
_CARRIED = "ledgerdesk_tenant_setting"  # in the connection's info: the tenant it carries now


def install() -> None:
    """Give every PostgreSQL transaction the tenant in context (idempotent)."""
    for target, name, listener in (
        (Engine, "before_cursor_execute", _carry_tenant),
        (Engine, "commit", _forget),
        (Engine, "rollback", _forget),
        # A setting made inside a savepoint goes with it when it is rolled back.
        (Engine, "rollback_savepoint", _forget_after_savepoint),
        # The pool ends a transaction left open by rolling it back itself.
        (Pool, "checkin", _forget_on_checkin),
    ):
        if not event.contains(target, name, listener):
            event.listen(target, name, listener)


@contextmanager
def rows_of(tenant_id: int) -> Iterator[None]:
    """Statements inside work on ``tenant_id``'s rows, for code that names its tenant
    itself rather than acting in its context: the audit trail writes each event into its
    own tenant's inbox and chain, whichever tenant (or none) the commit happens in."""
    token = _rows_of.set(tenant_id)
    try:
        yield
    finally:
        _rows_of.reset(token)


def _carry_tenant(connection: Connection, cursor, statement, parameters, context, executemany) -> None:
    if connection.dialect.name != "postgresql":
        return
    named = _rows_of.get()
    wanted = named if named is not None else current_tenant_id()
    if connection.info.get(_CARRIED) == wanted:
        return
    value = "" if wanted is None else str(int(wanted))
    raw = cursor.connection
    if _opens_plain_transaction(raw):
        # The transaction's first statement: psycopg would send BEGIN in a round trip of
        # its own, then the setting in another. One simple query does both; psycopg
        # reads the server's transaction status and sends no BEGIN of its own.
        result = raw.pgconn.exec_(f"BEGIN; SELECT set_config('{SETTING}', '{value}', true)".encode())
        if result.status != pq.ExecStatus.TUPLES_OK:
            raise errors.error_from_result(result, encoding=raw.info.encoding)
    else:
        # On a cursor of its own: ``cursor`` may be a server-side one (``yield_per``),
        # which only declares its query, so the setting would never be made.
        with raw.cursor() as setter:
            setter.execute("SELECT set_config(%s, %s, true)", (SETTING, value))
    connection.info[_CARRIED] = wanted


def _opens_plain_transaction(raw) -> bool:
    """Whether psycopg's next statement on ``raw`` would begin a transaction with a
    plain BEGIN (no isolation level, access mode or pipeline of its own)."""
    return (
        isinstance(raw, psycopg.Connection)
        and raw.pgconn.transaction_status == pq.TransactionStatus.IDLE
        and raw.pgconn.pipeline_status == pq.PipelineStatus.OFF
        and not raw.autocommit
        and raw.isolation_level is None
        and raw.read_only is None
        and raw.deferrable is None
    )


def _forget(connection: Connection) -> None:
    # A connection that broke (a restart, a killed backend) is gone with what it carried;
    # reading its info would try to reconnect in the middle of the rollback.
    if not connection.invalidated:
        connection.info.pop(_CARRIED, None)


def _forget_after_savepoint(connection: Connection, name, context) -> None:
    _forget(connection)


def _forget_on_checkin(dbapi_connection, connection_record) -> None:
    if connection_record is not None:
        connection_record.info.pop(_CARRIED, None)
