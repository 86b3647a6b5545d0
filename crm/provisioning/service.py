"""Tenant lifecycle. A tenant's own chain records its creation and suspension."""

import re
from zoneinfo import available_timezones

from babel.numbers import list_currencies
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from crm.audit.service import Actor, record, start_chain
from crm.errors import Conflict, DomainError, NotFound
from crm.extensions import db
from crm.i18n import SUPPORTED_LOCALES
from crm.provisioning.models import TenantSettings
from tenants import Tenant, TenantStatus, tenant_context

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")


def tenant_by_slug(slug: str) -> Tenant | None:
    return db.session.scalars(select(Tenant).where(Tenant.slug == slug)).one_or_none()


def list_tenants() -> list[Tenant]:
    return list(db.session.scalars(select(Tenant).order_by(Tenant.slug)))


def create_tenant(
    *,
    slug: str,
    name: str,
    actor: Actor,
    timezone: str = "Asia/Shanghai",
    locale: str | None = None,
    currency: str = "CNY",
) -> Tenant:
    """Create a tenant and start its audit chain with the creation event."""
    slug = (slug or "").strip().lower()
    name = (name or "").strip()
    currency = (currency or "").strip().upper()
    if not SLUG_RE.match(slug):
        raise DomainError(
            _l("The slug must be 1–40 lowercase letters, digits or inner hyphens."),
            "slug",
        )
    if not name or len(name) > 200:
        raise DomainError(_l("The name must be 1–200 characters."), "name")
    if timezone not in available_timezones():
        raise DomainError(_l("Unknown time zone %(tz)s (use e.g. Asia/Shanghai).", tz=timezone), "timezone")
    if locale is not None and locale not in SUPPORTED_LOCALES:
        raise DomainError(_l("Unsupported locale %(locale)s; use en or zh_CN.", locale=locale), "locale")
    if currency not in list_currencies():
        raise DomainError(
            _l("Unknown currency %(code)s (use an ISO 4217 code such as CNY).", code=currency), "currency"
        )
    if tenant_by_slug(slug) is not None:
        raise Conflict(_l("A tenant with the slug %(slug)s already exists.", slug=slug), "slug")
    tenant = Tenant(slug=slug, name=name, timezone=timezone, locale=locale, currency=currency)
    db.session.add(tenant)
    db.session.flush()
    with tenant_context(tenant):
        start_chain()
        db.session.add(TenantSettings())
        db.session.flush()
        record(
            "tenant.created",
            "tenant",
            tenant.id,
            actor=actor,
            data={"slug": slug, "timezone": timezone, "locale": locale, "currency": currency},
        )
    return tenant


def suspend_tenant(slug: str, *, actor: Actor) -> Tenant:
    """Suspend a tenant: all its URLs answer 404 until it is reactivated."""
    tenant = tenant_by_slug(slug)
    if tenant is None:
        raise NotFound(_l("No tenant has the slug %(slug)s.", slug=slug), "slug")
    if tenant.status == TenantStatus.SUSPENDED:
        return tenant
    tenant.status = TenantStatus.SUSPENDED
    with tenant_context(tenant):
        record("tenant.suspended", "tenant", tenant.id, actor=actor, data={"slug": tenant.slug})
    return tenant
