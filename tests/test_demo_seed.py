"""The demo a new user meets (issue 11, section 6): every seeded ticket gets a line in
`make run`'s output (its tracking page, or why it has none), a breached ticket shows
breach handling, and the pages have a favicon."""

import re
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from crm.audit.models import AuditEvent
from crm.columns import utcnow
from crm.demo.cli import ticket_lines
from crm.demo.seed import seed_demo
from crm.dnc.models import DoNotContact
from crm.extensions import db
from crm.leads.models import Lead
from crm.provisioning.service import tenant_by_slug
from crm.tickets.models import Ticket
from tenants import CurrentTenant, tenant_context
from tests.conftest import login, unique
from tests.test_refunds import text_of

PASSWORD = "demo password 1"


@pytest.fixture(scope="module")
def demo(app):
    """A demo desk of its own (the `demo` slug may already be seeded by another test)."""
    with app.app_context():
        result = seed_demo(PASSWORD, slug=unique("demo"))
        db.session.commit()
        tenant = CurrentTenant.of(tenant_by_slug(result.tenant.slug))
        lines = ticket_lines(result)
        with tenant_context(tenant):
            references = list(db.session.scalars(select(Ticket.reference).order_by(Ticket.number)))
    return tenant, lines, references


def signed_in(app, tenant, email: str):
    client = app.test_client()
    user = type("Demo", (), {"email": email, "password": PASSWORD})
    assert login(client, tenant, user).status_code == 302
    return client


def test_every_seeded_ticket_has_a_line_and_every_printed_link_opens_its_ticket(app, demo):
    _tenant, lines, references = demo
    assert len(lines) == len(references) == 9
    assert [re.search(r"RF-\d+", line).group(0) for line in lines] == references
    links = [re.search(r"https?://\S+", line) for line in lines]
    for line, link in zip(lines, links, strict=True):
        if link is None:
            assert "has no tracking page: opened by staff" in line
            continue
        reference = re.search(r"RF-\d+", line).group(0)
        page = app.test_client().get(urlsplit(link.group(0)).path)
        assert page.status_code == 200 and reference in page.text
    assert sum(link is not None for link in links) == 7  # the ones filed on the form


def test_the_demo_has_a_breached_ticket_its_staff_were_told_of(app, demo):
    tenant, _lines, references = demo
    late = references[-1]
    agent = signed_in(app, tenant, "agent@demo.test")

    notices = text_of(agent.get(f"/t/{tenant.slug}/notifications").text)
    assert re.search(rf"Overdue Deadline missed ?: Regulatory [a-z ]+ · {late}", notices), notices
    ticket = text_of(agent.get(f"/t/{tenant.slug}/tickets/{late.split('-')[1]}").text)
    assert "Overdue" in ticket
    with app.app_context(), tenant_context(tenant):
        ticket_id = db.session.scalar(select(Ticket.id).where(Ticket.reference == late))
        breaches = db.session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "clock.breached", AuditEvent.subject_id == str(ticket_id))
        )
    assert breaches >= 1
    manager = signed_in(app, tenant, "manager@demo.test")
    assert late in text_of(manager.get(f"/t/{tenant.slug}/notifications").text)


def test_pages_have_a_favicon_that_is_served(app, client, demo):
    tenant, _lines, _references = demo
    for page in (client.get(f"/t/{tenant.slug}/login"), client.get(f"/t/{tenant.slug}/refund")):
        link = re.search(r'<link rel="icon" type="image/svg\+xml" href="([^"]+)">', page.text)
        assert link, "no favicon link"
    icon = client.get(link.group(1))
    assert icon.status_code == 200
    assert icon.mimetype == "image/svg+xml" and b"<svg" in icon.data
    icon.close()


def test_the_demo_has_leads_in_every_stage_one_overdue_and_a_listed_number(app, demo):
    tenant, _lines, _references = demo
    with app.app_context(), tenant_context(tenant):
        stages = set(db.session.scalars(select(Lead.stage)))
        assert stages == {"new", "contacted", "qualified", "trial", "won", "lost", "unreachable"}
        overdue = db.session.scalars(select(Lead.reference).where(Lead.first_contact_due_at < utcnow())).all()
        assert overdue == ["LD-1008"]
        assert db.session.scalar(select(func.count()).select_from(DoNotContact)) == 1
    agent = signed_in(app, tenant, "agent@demo.test")
    assert "LD-1008" in agent.get(f"/t/{tenant.slug}/leads?view=overdue").text
    # The won lead is the customer of the first refund request: its sales history shows.
    assert 'id="sales-history"' in agent.get(f"/t/{tenant.slug}/tickets/1001").text
