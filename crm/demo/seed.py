"""Seeding the demo tenant through the same services the app uses, so the demo's own
audit trail is real. Safe to run again: what exists is left alone."""

from dataclasses import dataclass

from crm.audit.service import Actor
from crm.auth import service as auth
from crm.extensions import db
from crm.provisioning import service as provisioning
from tenants import Tenant, tenant_context

SLUG = "demo"
NAME = "Demo Telecom Ltd"
USERS = (
    ("admin@demo.test", "admin", "Ada Admin"),
    ("manager@demo.test", "manager", "Min Manager"),
    ("agent@demo.test", "agent", "Alex Agent"),
    ("auditor@demo.test", "auditor", "Audrey Auditor"),
)


@dataclass(frozen=True)
class SeedResult:
    tenant: Tenant
    created: list[str]


def seed_demo(password: str) -> SeedResult:
    """Create the demo tenant and its four users if missing; the caller commits."""
    actor = Actor.operator("demo-seed")
    created: list[str] = []
    tenant = provisioning.tenant_by_slug(SLUG)
    if tenant is None:
        tenant = provisioning.create_tenant(
            slug=SLUG, name=NAME, timezone="Asia/Shanghai", currency="CNY", actor=actor
        )
        created.append(f"tenant {SLUG}")
    with tenant_context(tenant):
        for email, role, name in USERS:
            if auth.user_by_email(email) is None:
                auth.create_user(email=email, role=role, password=password, display_name=name, actor=actor)
                created.append(email)
        db.session.flush()
    return SeedResult(tenant, created)
