"""Which tenant the current request, job or command acts for."""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from tenants.models import Tenant


class TenantContextError(RuntimeError):
    """A tenant-owned row was written with no tenant, or with another tenant, in context."""


@dataclass(frozen=True)
class CurrentTenant:
    """A detached snapshot of the tenant in context, safe to keep across sessions."""

    id: int
    slug: str
    name: str
    timezone: str
    locale: str | None
    currency: str

    @classmethod
    def of(cls, tenant: Tenant) -> "CurrentTenant":
        return cls(
            id=tenant.id,
            slug=tenant.slug,
            name=tenant.name,
            timezone=tenant.timezone,
            locale=tenant.locale,
            currency=tenant.currency,
        )


_current: ContextVar[CurrentTenant | None] = ContextVar("ledgerdesk_tenant", default=None)


def current_tenant() -> CurrentTenant | None:
    return _current.get()


def current_tenant_id() -> int | None:
    tenant = _current.get()
    return tenant.id if tenant else None


def enter(tenant: CurrentTenant | None):
    """Set the tenant in context; returns the token that ``leave`` takes."""
    return _current.set(tenant)


def leave(token) -> None:
    _current.reset(token)


@contextmanager
def tenant_context(tenant: Tenant | CurrentTenant | None) -> Iterator[CurrentTenant | None]:
    """Act for ``tenant`` inside the block (``None``: for no tenant at all)."""
    snapshot = CurrentTenant.of(tenant) if isinstance(tenant, Tenant) else tenant
    token = enter(snapshot)
    try:
        yield snapshot
    finally:
        leave(token)
