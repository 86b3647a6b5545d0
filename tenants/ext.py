"""The Flask side: ``/t/<tenant>/…`` URLs resolve their tenant, and ``url_for`` fills the
prefix in from the tenant in context. A process keeps the active tenants it resolved
while it hears of every change to them (``tenants.cache``)."""

import re

from flask import Flask, abort, current_app, g, request
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import select

from tenants import cache, context, guard, rls
from tenants.models import Tenant, TenantStatus

URL_PREFIX = "/t/<tenant>"
UNROUTED_PREFIX = re.compile(r"^/t/([a-z0-9-]{1,40})/")


class Tenants:
    """``Tenants(app, db)`` or ``Tenants().init_app(app, db)``."""

    def __init__(self, app: Flask | None = None, db: SQLAlchemy | None = None) -> None:
        if app is not None and db is not None:
            self.init_app(app, db)

    def init_app(self, app: Flask, db: SQLAlchemy) -> None:
        self.db = db
        session_class = guard.install(db.session.session_factory)
        rls.install()
        cache.watch(session_class, Tenant)
        app.url_value_preprocessor(self._enter_tenant_of_url)
        app.before_request(self._enter_tenant_of_unrouted_path)
        app.url_defaults(self._fill_tenant_prefix)
        app.teardown_request(self._leave_tenant)
        app.extensions["tenants"] = self

    def active_tenant(self, slug: str) -> context.CurrentTenant | None:
        """The active tenant with this slug, as a snapshot (kept per process while
        changes are heard: a suspension takes effect at its commit)."""

        def load() -> context.CurrentTenant | None:
            tenant = self.db.session.execute(
                select(Tenant).where(Tenant.slug == slug, Tenant.status == TenantStatus.ACTIVE)
            ).scalar_one_or_none()
            return context.CurrentTenant.of(tenant) if tenant is not None else None

        return cache.cached(self.db.engine, ("tenant", slug), load)

    def _enter_tenant_of_url(self, endpoint: str | None, values: dict | None) -> None:
        if not values or "tenant" not in values:
            return
        tenant = self.active_tenant(values.pop("tenant"))
        if tenant is None:
            abort(404)
        g.tenant_token = context.enter(tenant)

    def _enter_tenant_of_unrouted_path(self) -> None:
        """A mistyped address under a tenant's prefix still gets that tenant's 404 page."""
        if request.routing_exception is None or "tenant_token" in g:
            return
        match = UNROUTED_PREFIX.match(request.path)
        tenant = self.active_tenant(match.group(1)) if match else None
        if tenant is not None:
            g.tenant_token = context.enter(tenant)

    def _fill_tenant_prefix(self, endpoint: str, values: dict) -> None:
        tenant = context.current_tenant()
        if tenant is None or "tenant" in values:
            return
        if current_app.url_map.is_endpoint_expecting(endpoint, "tenant"):
            values["tenant"] = tenant.slug

    def _leave_tenant(self, exc: BaseException | None) -> None:
        token = g.pop("tenant_token", None)
        if token is not None:
            context.leave(token)
