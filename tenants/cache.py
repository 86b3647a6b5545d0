"""Per-process copies of what every request of a tenant reads and almost never changes
(the tenant by its slug, its settings), kept only while changes are sure to reach them.

A commit that changed a watched model through the session (a flush, or an ORM UPDATE,
INSERT or DELETE statement) clears this process's copies
and, on PostgreSQL, sends a notification in the same transaction (so it is delivered only
if the change commits). Each process listens on its own connection in a thread and clears
its copies when one arrives. Copies are kept only while that listener is connected: on
SQLite, or when the listener's connection is down, nothing is kept and every request
reads the database, as without this module.

A transaction that changed a watched model neither uses nor fills the copies
(``cached(..., session=)``): it reads its own changes, and they are not kept before they
commit. Core statements a service runs on the session's connection are seen when it says
so (``written``). Changes made outside the session (raw SQL, another program) are not
seen: change what is kept through the services.
"""

import os
import threading
import time
import weakref
from collections.abc import Callable, Hashable
from typing import Any

import psycopg
from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import ORMExecuteState, Session, make_transient_to_detached

CHANNEL = "ledgerdesk_tenant_config"
CHANGED_KEY = "tenant_config_changed"
_RETRY_SECONDS = 1.0

_lock = threading.Lock()
_copies: dict[Hashable, Any] = {}
_listeners: dict[str, "_Listener"] = {}  # by database URL, in this process
_conninfos: "weakref.WeakKeyDictionary[Engine, str]" = weakref.WeakKeyDictionary()
_watched: tuple[type, ...] = ()


def clear() -> None:
    with _lock:
        _copies.clear()


def keeping(engine: Engine) -> bool:
    """Whether this process keeps copies for ``engine``'s database now."""
    listener = _listener_for(engine)
    return listener is not None and listener.live


def cached(engine: Engine, key: Hashable, load: Callable[[], Any], *, session: Session | None = None) -> Any:
    """``load()``, or this process's copy of what it returned for ``key``. ``None`` is
    never kept (an unknown or suspended tenant is looked up each time). With ``session``,
    nothing is kept or used while its transaction has changed a watched model."""
    listener = _listener_for(engine)
    if listener is None or not listener.live or (session is not None and session.info.get(CHANGED_KEY)):
        return load()
    key = (listener.conninfo, key)
    generation = listener.generation
    try:
        return _copies[key]
    except KeyError:
        pass
    value = load()
    if session is not None and session.info.get(CHANGED_KEY):
        return value  # the load flushed a change of this transaction's
    with _lock:
        # Kept only if no change arrived while it was read.
        if value is not None and listener.live and listener.generation == generation:
            _copies[key] = value
    return value


def detached_copy(row: Any) -> Any:
    """A copy of the mapped ``row`` (its columns) that belongs to no session, to keep;
    ``session.merge(copy, load=False)`` brings it into a session without a read."""
    model = type(row)
    copy = model(**{attr.key: getattr(row, attr.key) for attr in inspect(model).column_attrs})
    make_transient_to_detached(copy)
    return copy


def watch(session_class: type[Session], *models: type) -> None:
    """Clear the copies when a transaction that changed one of ``models`` commits, in
    this process and (on PostgreSQL) in every other (idempotent)."""
    global _watched
    _watched = tuple({*_watched, *models})
    for name, listener in (
        ("do_orm_execute", _note_statement),
        ("after_flush", _note_changes),
        ("after_commit", _after_commit),
        ("after_rollback", _forget_changes),
    ):
        if not event.contains(session_class, name, listener):
            event.listen(session_class, name, listener)


def _note_statement(state: ORMExecuteState) -> None:
    if not (state.is_update or state.is_delete or state.is_insert):
        return
    mapper = state.bind_mapper
    if mapper is not None and issubclass(mapper.class_, _watched):
        _note_change(state.session)


def _note_changes(session: Session, _flush_context) -> None:
    if any(
        isinstance(obj, _watched) and (obj not in session.dirty or session.is_modified(obj))
        for obj in (*session.new, *session.deleted, *session.dirty)
    ):
        _note_change(session)


def written(session: Session, model: type) -> None:
    """A Core statement on ``session``'s connection inserted, changed or deleted rows of
    ``model``: if it is watched, the copies go at the commit, as for a flush."""
    if issubclass(model, _watched):
        _note_change(session)


def _note_change(session: Session) -> None:
    if session.info.get(CHANGED_KEY):
        return
    session.info[CHANGED_KEY] = True
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        # Delivered at commit, and only if the transaction commits.
        connection.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})


def _after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint released: the change is not committed yet
    if session.info.pop(CHANGED_KEY, False):
        for listener in list(_listeners.values()):
            listener.generation += 1
        clear()


def _forget_changes(session: Session) -> None:
    if not session.in_nested_transaction():
        session.info.pop(CHANGED_KEY, None)


def _listener_for(engine: Engine) -> "_Listener | None":
    if engine.dialect.name != "postgresql":
        return None
    url = _conninfo(engine)
    listener = _listeners.get(url)
    if listener is None or listener.pid != os.getpid():  # a forked worker listens itself
        with _lock:
            listener = _listeners.get(url)
            if listener is None or listener.pid != os.getpid():
                listener = _listeners[url] = _Listener(url)
    return listener


def _conninfo(engine: Engine) -> str:
    """libpq's form of the engine's URL, rendered once per engine rather than on every
    ``cached()`` call (a URL's own hash renders it); kept no longer than the engine."""
    conninfo = _conninfos.get(engine)
    if conninfo is None:
        conninfo = _conninfos[engine] = engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False
        )
    return conninfo


class _Listener:
    """A daemon thread holding a LISTEN connection; ``live`` while it is connected."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self.pid = os.getpid()
        self.live = False
        self.generation = 0
        threading.Thread(target=self._run, name="tenant-config-listener", daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                with psycopg.connect(
                    self.conninfo, autocommit=True, application_name="ledgerdesk-config-listener"
                ) as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    self.live = True
                    for _notification in connection.notifies():
                        self.generation += 1
                        clear()
            except Exception:  # whatever broke the connection: stop keeping copies, retry
                pass
            self.live = False
            self.generation += 1
            clear()
            time.sleep(_RETRY_SECONDS)
