"""The Flask extensions, created unbound and attached to the app in ``create_app``."""

import functools

from flask_babel import Babel
from flask_bootstrap import Bootstrap5
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import event
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine

from tenants import Base, TenantContextError, Tenants, current_tenant_id
from tenants import cache as tenant_cache

db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
babel = Babel()
bootstrap = Bootstrap5()
tenants = Tenants()


@event.listens_for(Engine, "connect")
def _session_settings(dbapi_connection, connection_record) -> None:
    """SQLite enforces foreign keys only when asked, per connection; WAL lets readers
    carry on while a request writes. PostgreSQL's JIT compiles any plan it estimates as
    costly, which for our short queries (a text search's fallback that mostly never
    runs) costs 8-13 ms and saves nothing (docs/performance.md)."""
    module = type(dbapi_connection).__module__
    if module == "sqlite3":
        statements = ("PRAGMA foreign_keys=ON", "PRAGMA journal_mode=WAL", "PRAGMA busy_timeout=10000")
    elif module.startswith("psycopg"):
        statements = ("SET jit = off",)
    else:
        return
    cursor = dbapi_connection.cursor()
    for statement in statements:
        cursor.execute(statement)
    cursor.close()
    if module.startswith("psycopg"):
        dbapi_connection.commit()  # the SET outlives no transaction otherwise


def pending_in_transaction(key: str) -> list:
    """A list kept on the session for work due when the current transaction commits.

    Begins the transaction if none is open, so a rollback always has one to end and the
    rollback listeners always clear the list with it. What is added inside a savepoint
    (``begin_nested``) that rolls back is taken off again (``_rewind``)."""
    _PENDING_KEYS.add(key)
    session = db.session()  # the scoped session's current Session
    if not session.in_transaction():
        session.begin()
    return session.info.setdefault(key, [])


# SQLAlchemy fires after_commit, after_rollback and after_soft_rollback for savepoints too.
# Work kept for the real commit (chaining audit events, handing jobs over, keeping new
# files) must neither run when a savepoint is released nor be dropped when one rolls
# back: such listeners are wrapped in ``at_outermost``, and a savepoint that rolls back
# takes off the pending lists only what was added inside it.
_PENDING_KEYS: set[str] = set()
_SAVEPOINT_MARKS = "pending_marks"


def at_outermost(listener):
    """Run a session listener (``(session)`` or ``(session, previous_transaction)``) only
    when the outermost transaction commits or rolls back, not a savepoint."""

    @functools.wraps(listener)
    def outermost(session, *args):
        nested = args[0].nested if args else session.in_nested_transaction()
        return None if nested else listener(session, *args)

    return outermost


def _mark(session, transaction) -> None:
    if transaction.nested:
        lengths = {key: len(session.info.get(key, ())) for key in _PENDING_KEYS}
        session.info.setdefault(_SAVEPOINT_MARKS, {})[id(transaction)] = lengths


def _rewind(session, previous_transaction) -> None:
    if not previous_transaction.nested:
        session.info.pop(_SAVEPOINT_MARKS, None)
        return
    lengths = session.info.get(_SAVEPOINT_MARKS, {}).pop(id(previous_transaction), {})
    for key, length in lengths.items():
        if key in session.info:
            del session.info[key][length:]


def install_savepoint_rewind(session_class) -> None:
    """(Idempotent.) Installed before the other listeners, so a savepoint's additions are
    gone before any of them looks."""
    for name, listener in (("after_transaction_create", _mark), ("after_soft_rollback", _rewind)):
        if not event.contains(session_class, name, listener):
            event.listen(session_class, name, listener, insert=True)


_INSERT_BY_DIALECT = {"postgresql": postgresql_insert, "sqlite": sqlite_insert}


def insert_rows(model: type, rows: list[dict], *returning, skip_existing: bool = False) -> list:
    """Insert ``rows`` for the tenant in context; the ``returning`` columns of the rows
    inserted, in the rows' order. With ``skip_existing``, rows whose key (or another
    unique key) exists are skipped: on PostgreSQL a concurrent insert of the same key
    waits for the other transaction, so exactly one caller inserts it.

    A Core statement on the session's connection (the same transaction, after a flush
    of what is pending), without the ORM's per-statement work, for rows the request
    does not read back as objects: the rows are stamped with the tenant here, which is
    what the guard checks."""
    tenant_id = current_tenant_id()
    if tenant_id is None:
        raise TenantContextError(f"insert into {model.__name__} with no tenant in context")
    db.session.flush()
    connection = db.session.connection()
    statement = _insert_statement(model.__table__, connection.dialect.name, skip_existing, returning)
    stamped = [{**row, "tenant_id": tenant_id} for row in rows]
    if returning:
        inserted = connection.execute(statement, stamped).all()
        written = bool(inserted)
    else:
        inserted, written = [], connection.execute(statement, stamped).rowcount != 0
    if written:
        tenant_cache.written(db.session(), model)
    return inserted


@functools.cache
def _insert_statement(table, dialect: str, skip_existing: bool, returning: tuple):
    """One statement object per shape, so SQLAlchemy computes its cache key once rather
    than on every execution (the hosted form runs four of these per submission)."""
    statement = _INSERT_BY_DIALECT[dialect](table)
    if skip_existing:
        statement = statement.on_conflict_do_nothing()
    if not returning:
        return statement.inline()  # else a single row's INSERT reads back its id, unasked
    # Several rows' values come back in the rows' order (skipped rows have none to give).
    return statement.returning(*returning, sort_by_parameter_order=not skip_existing)


def insert_new(model: type, rows: list[dict], *returning) -> list:
    """``insert_rows`` skipping rows whose key exists."""
    return insert_rows(model, rows, *returning, skip_existing=True)


def insert_or_ignore(model: type, row: dict) -> bool:
    """Insert ``row`` for the tenant in context unless its key exists; True if inserted."""
    return bool(insert_new(model, [row], *model.__table__.primary_key.columns))
