"""The one isolation mechanism: session events that confine every ORM read, update and
delete to the tenant in context, and refuse writes stamped with any other tenant.

With no tenant in context, tenant-owned tables read as empty and writes raise. Raw SQL
(``text()``, a bare ``Connection``) does not pass through here.
"""

from sqlalchemy import event, false
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria

from tenants.context import TenantContextError, current_tenant_id
from tenants.models import TenantScoped


def install(session_class: type[Session]) -> None:
    """Attach the guard to a session class (idempotent)."""
    for name, listener in (
        ("do_orm_execute", _scope_statement),
        ("before_flush", _check_flush),
    ):
        if not event.contains(session_class, name, listener):
            event.listen(session_class, name, listener)


def _scope_statement(state: ORMExecuteState) -> None:
    if state.is_column_load or state.execution_options.get("tenant_guard") is False:
        return
    if state.is_insert:
        _check_insert_parameters(state)
        return
    if not (state.is_select or state.is_update or state.is_delete):
        return
    tenant_id = current_tenant_id()
    if tenant_id is None:
        criteria = with_loader_criteria(TenantScoped, lambda cls: false(), include_aliases=True)
    else:
        criteria = with_loader_criteria(
            TenantScoped, lambda cls: cls.tenant_id == tenant_id, include_aliases=True
        )
    state.statement = state.statement.options(criteria)


def _check_insert_parameters(state: ORMExecuteState) -> None:
    mapper = state.bind_mapper
    if mapper is None or not issubclass(mapper.class_, TenantScoped):
        return
    tenant_id = current_tenant_id()
    if tenant_id is None:
        raise TenantContextError(f"insert into {mapper.class_.__name__} with no tenant in context")
    rows = state.parameters
    rows = rows if isinstance(rows, list) else [rows or {}]
    for row in rows:
        if row.get("tenant_id") != tenant_id:
            raise TenantContextError(f"insert into {mapper.class_.__name__} must carry tenant_id={tenant_id}")


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
        if isinstance(obj, TenantScoped) and obj.tenant_id != tenant_id:
            raise TenantContextError(
                f"{type(obj).__name__} of tenant {obj.tenant_id} changed outside its tenant"
            )
