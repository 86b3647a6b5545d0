"""Multi-tenancy as a small Flask extension: the Tenant model, the tenant of a request
or job, and the one isolation guard for the ORM's queries and writes through the session
(raw SQL and statements on a bare connection bypass it: see ``tenants.guard``).

This package never imports ``crm``.
"""

from tenants.context import (
    CurrentTenant,
    TenantContextError,
    current_tenant,
    current_tenant_id,
    tenant_context,
)
from tenants.ext import Tenants
from tenants.models import Base, BigIntId, Tenant, TenantScoped, TenantStatus, tenant_fk

__all__ = [
    "Base",
    "BigIntId",
    "CurrentTenant",
    "Tenant",
    "TenantContextError",
    "TenantScoped",
    "TenantStatus",
    "Tenants",
    "current_tenant",
    "current_tenant_id",
    "tenant_context",
    "tenant_fk",
]
