"""The one isolation mechanism for ORM work: a guarded session that confines what it
reads, writes and hands back to the tenant in context.

What it covers, for tenant-owned (``TenantScoped``) models and the statements and loads
that go through the session (``Session.execute``/``scalars``/``get``, ``Query``, the
ORM's own relationship loads and flushes):

- SELECT, UPDATE and DELETE of an entity, in joins and subqueries too, and the lazy and
  eager loads they lead to: ``tenant_id = <tenant in context>`` is added to each
  (``with_loader_criteria``), and to an ORM bulk UPDATE by primary key (a list of
  rows), which ignores loader criteria: there it is written into the WHERE clause.
- An UPDATE never sets ``tenant_id``. Every row an INSERT writes (``values()``, multiple
  values, a list of rows) carries the tenant in context. INSERT ... FROM SELECT and
  ON CONFLICT DO UPDATE are refused: the rows they touch cannot be checked here.
- A statement with no mapped class in it (Core, on ``Table`` objects) that names a
  tenant-owned table is refused: the tenant condition cannot be attached to it. Use the
  mapped class, or a connection (below).
- Identity-map hits, which emit no SQL: ``Session.get``/``get_one`` and many-to-one lazy
  loads by primary key treat another tenant's object as absent (they then ask the
  database, under the tenant condition), and ``merge`` onto one is refused.
- Flushes: new objects are stamped with the tenant in context, and adding, changing or
  deleting an object of another tenant, or changing any object's ``tenant_id``, raises.

With no tenant in context, tenant-owned tables read as empty and writes raise
(``TenantContextError``).

What it does not cover:

- Raw SQL (``text()``, also inside ``select(...).from_statement()``), and any statement
  run on a ``Connection`` (``session.connection().execute``, ``engine.connect()``). Such
  code names its tenant itself, with a comment saying why.
- A tenant-owned ``Table`` (rather than its mapped class) inside an ORM statement, say
  in a subquery: only mapped classes get the tenant condition.
- Statements run with the execution option ``tenant_guard=False``: the named paths that
  span tenants (the SLA sweep's scan for due clocks).
- Reloading the expired or deferred attributes of an object already in hand (after a
  commit, ``refresh``): filtering that load would only make the object look deleted. So
  ORM objects do not cross tenant contexts: carry ids, or ``CurrentTenant`` snapshots.
"""

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Table, event, false, inspect
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker, with_loader_criteria
from sqlalchemy.orm.base import LoaderCallableStatus, PassiveFlag
from sqlalchemy.sql.elements import BindParameter, ClauseElement
from sqlalchemy.sql.util import find_tables

from tenants.context import TenantContextError, current_tenant_id
from tenants.models import Base, TenantScoped

_UNLOADED = object()


class GuardedSession(Session):
    """A session whose identity-map lookups stay inside the tenant in context.

    ``Session._identity_lookup`` is the documented hook (the horizontal sharding
    extension overrides it too) through which ``get``, ``get_one`` and many-to-one lazy
    loads consult the identity map before, or instead of, emitting SQL."""

    def _identity_lookup(
        self, mapper, primary_key_identity, identity_token=None, passive=PassiveFlag.PASSIVE_OFF, **kwargs
    ):
        found = super()._identity_lookup(
            mapper, primary_key_identity, identity_token=identity_token, passive=passive, **kwargs
        )
        if not isinstance(found, TenantScoped):
            return found
        if (kwargs.get("execution_options") or {}).get("tenant_guard") is False:
            return found
        owner = inspect(found).dict.get("tenant_id", _UNLOADED)
        if owner is _UNLOADED:
            if not passive & PassiveFlag.SQL_OK:
                return LoaderCallableStatus.PASSIVE_NO_RESULT
            owner = found.tenant_id
        tenant_id = current_tenant_id()
        # Absent, so the caller asks the database, where the tenant condition applies.
        return found if tenant_id is not None and owner == tenant_id else None

    def merge(self, instance, *, load: bool = True, options=None):
        merged = super().merge(instance, load=load, options=options)
        stored = isinstance(merged, TenantScoped) and inspect(merged).has_identity
        if stored and _stored_tenant_id(merged) != current_tenant_id():
            raise TenantContextError(f"merge onto another tenant's {type(merged).__name__}")
        return merged


def install(session_factory: sessionmaker) -> type[Session]:
    """Make ``session_factory`` build guarded sessions and attach the guard's events to
    them (idempotent). Returns the session class, for other extensions' events."""
    session_class = session_factory.class_
    if not issubclass(session_class, GuardedSession):
        session_class = type(session_class.__name__, (GuardedSession, session_class), {})
        session_factory.class_ = session_class
    for name, listener in (
        ("do_orm_execute", _scope_statement),
        ("before_flush", _check_flush),
    ):
        if not event.contains(session_class, name, listener):
            event.listen(session_class, name, listener)
    return session_class


def _scope_statement(state: ORMExecuteState) -> None:
    if state.is_column_load or state.execution_options.get("tenant_guard") is False:
        return
    if not (state.is_select or state.is_insert or state.is_update or state.is_delete):
        return
    if not state.is_orm_statement:
        _refuse_core_statement_on_tenant_tables(state)
        return
    if state.is_insert:
        _check_insert(state)
        return
    tenant_id = current_tenant_id()
    mapper = state.bind_mapper
    scoped = mapper is not None and issubclass(mapper.class_, TenantScoped)
    if state.is_update and scoped:
        _refuse_setting_tenant_id(state, mapper.class_)
    if tenant_id is None:
        criteria = with_loader_criteria(TenantScoped, lambda cls: false(), include_aliases=True)
    else:
        criteria = with_loader_criteria(
            TenantScoped, lambda cls: cls.tenant_id == tenant_id, include_aliases=True
        )
    statement = state.statement.options(criteria)
    if scoped and (state.is_update or state.is_delete) and isinstance(state.parameters, list):
        # By primary key (a list of rows), loader criteria are ignored: say it in WHERE.
        # The ORM cannot then update the rows' objects in the session: expire them.
        cls = mapper.class_
        statement = statement.where(false() if tenant_id is None else cls.tenant_id == tenant_id)
        state.update_execution_options(synchronize_session=None)
        _expire_rows_objects(state.session, mapper, state.parameters)
    state.statement = statement


def _expire_rows_objects(session: Session, mapper, rows: list[dict]) -> None:
    for row in rows:
        try:
            identity = [row[column.key] for column in mapper.primary_key]
        except KeyError:
            continue  # not a row by primary key; the ORM will say so
        obj = session.identity_map.get(mapper.identity_key_from_primary_key(identity))
        if obj is not None:
            session.expire(obj)


def _tenant_tables() -> set[Table]:
    return {
        table
        for mapper in Base.registry.mappers
        if issubclass(mapper.class_, TenantScoped)
        for table in mapper.tables
    }


def _refuse_core_statement_on_tenant_tables(state: ORMExecuteState) -> None:
    named = set()
    for found in find_tables(state.statement, include_aliases=True, include_crud=True):
        while getattr(found, "element", None) is not None and not isinstance(found, Table):
            found = found.element
        named.add(found)
    owned = named & _tenant_tables()
    if owned:
        names = ", ".join(sorted(table.name for table in owned))
        raise TenantContextError(
            f"Core statement on tenant-owned {names} through the session: use the mapped class,"
            " or the session's connection with an explicit tenant condition"
        )


def _key(column: Any) -> str:
    return column if isinstance(column, str) else column.key


def _plain(value: Any) -> Any:
    """A value as written to a column; an SQL expression stays an expression."""
    return value.effective_value if isinstance(value, BindParameter) and value.callable is None else value


def _parameter_rows(state: ORMExecuteState) -> list[dict]:
    parameters = state.parameters
    if not parameters:
        return []
    return list(parameters) if isinstance(parameters, list) else [parameters]


def _refuse_setting_tenant_id(state: ORMExecuteState, cls: type) -> None:
    statement = state.statement
    keys = {_key(column) for column in (statement._values or {})}
    keys.update(key for row in _parameter_rows(state) for key in row)
    if "tenant_id" in keys:
        raise TenantContextError(f"update of {cls.__name__} may not set tenant_id")


def _insert_rows(state: ORMExecuteState) -> Iterator[dict]:
    """Every row an ORM INSERT writes, as column key -> value."""
    statement = state.statement
    table = statement.table
    common = {_key(column): _plain(value) for column, value in (statement._values or {}).items()}
    rows = [common]
    if statement._multi_values:
        rows = []
        for group in statement._multi_values:
            for row in group:
                if isinstance(row, dict):
                    values = {_key(column): _plain(value) for column, value in row.items()}
                else:  # positional, in the table's column order
                    values = {column.key: _plain(value) for column, value in zip(table.c, row, strict=False)}
                rows.append({**common, **values})
    parameter_rows = _parameter_rows(state)
    for row in rows:
        if not parameter_rows:
            yield row
        for parameters in parameter_rows:
            yield {**row, **parameters}


def _check_insert(state: ORMExecuteState) -> None:
    mapper = state.bind_mapper
    if mapper is None or not issubclass(mapper.class_, TenantScoped):
        return
    name = mapper.class_.__name__
    tenant_id = current_tenant_id()
    if tenant_id is None:
        raise TenantContextError(f"insert into {name} with no tenant in context")
    statement = state.statement
    if statement._select_names is not None:
        raise TenantContextError(f"insert into {name} from a SELECT: its tenant_id cannot be checked")
    upsert = getattr(statement, "_post_values_clause", None)
    if upsert is not None and "DoNothing" not in type(upsert).__name__:
        raise TenantContextError(
            f"insert into {name} that updates on conflict: the row it updates is unchecked"
        )
    for row in _insert_rows(state):
        value = row.get("tenant_id")
        if isinstance(value, ClauseElement) or value != tenant_id:
            raise TenantContextError(f"insert into {name} must carry tenant_id={tenant_id}")


def _stored_tenant_id(obj: TenantScoped) -> int | None:
    """The tenant a persistent object's row belongs to, whatever was assigned since."""
    history = inspect(obj).attrs.tenant_id.history
    if history.deleted:
        return history.deleted[0]
    return obj.tenant_id


def _check_flush(session: Session, flush_context, instances) -> None:
    tenant_id = current_tenant_id()
    for obj in session.new:
        if not isinstance(obj, TenantScoped):
            continue
        if tenant_id is None:
            raise TenantContextError(f"{type(obj).__name__} added with no tenant in context")
        if obj.tenant_id is None:
            obj.tenant_id = tenant_id
        elif obj.tenant_id != tenant_id:
            raise TenantContextError(f"{type(obj).__name__} stamped with another tenant's id")
    for obj in (*session.dirty, *session.deleted):
        if not isinstance(obj, TenantScoped):
            continue
        stored = _stored_tenant_id(obj)
        if stored != tenant_id or obj.tenant_id != stored:
            raise TenantContextError(f"{type(obj).__name__} of tenant {stored} changed outside its tenant")
