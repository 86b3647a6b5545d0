"""A page that only shows something changes nothing: a new tenant has its default
calendar, SLA policy and deadline rules from its creation, and the admin pages that show
them write no row and no audit event."""

from urllib.parse import quote

from sqlalchemy import func, select

from crm.audit.models import AuditEvent, AuditInbox
from crm.sla.models import ConfigVersion
from crm.sla.rules import DEFAULT_CALENDAR
from tests.conftest import acting_for


def counts(app, tenant) -> tuple[int, int]:
    with acting_for(app, tenant) as session:
        versions = session.scalar(select(func.count()).select_from(ConfigVersion))
        events = session.scalar(select(func.count()).select_from(AuditEvent))
        events += session.scalar(select(func.count()).select_from(AuditInbox))
    return versions, events


def test_a_new_tenant_has_its_defaults_and_the_admin_pages_only_read_them(app, client, signed_in):
    tenant, _admin = signed_in("admin")
    with acting_for(app, tenant) as session:
        kinds = session.scalars(select(ConfigVersion.kind).order_by(ConfigVersion.kind)).all()
        created = session.scalars(
            select(AuditEvent.action).where(AuditEvent.action.like("%.version_created"))
        ).all()
    assert sorted(kinds) == ["calendar", "deadlines", "sla_policy"]
    assert len(created) == 3
    before = counts(app, tenant)
    for path in (
        "admin/calendars",
        f"admin/calendars/{quote(DEFAULT_CALENDAR)}",
        "admin/sla",
        "admin/deadlines",
    ):
        assert client.get(f"/t/{tenant.slug}/{path}").status_code == 200, path
    assert counts(app, tenant) == before
