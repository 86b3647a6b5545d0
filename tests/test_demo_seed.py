"""The demo a new user meets (issue 11, section 6): every seeded ticket gets a line in
`make run`'s output (its tracking page, or why it has none), a breached ticket shows
breach handling, and the pages have a favicon."""

import re
from datetime import timedelta
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
from crm.refunds.models import Escalation
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
            # Today's tickets; the months of history before them were received weeks ago.
            today = select(Ticket.reference).where(Ticket.created_at > utcnow() - timedelta(hours=1))
            references = list(db.session.scalars(today.order_by(Ticket.number)))
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
    tenant, _lines, references = demo
    with app.app_context(), tenant_context(tenant):
        stages = set(db.session.scalars(select(Lead.stage)))
        assert stages == {"new", "contacted", "qualified", "trial", "won", "lost", "unreachable"}
        overdue = db.session.execute(
            select(Lead.reference, Lead.name).where(Lead.first_contact_due_at < utcnow())
        )
        [(reference, name)] = overdue.all()
        assert name == "冯雪"
        assert db.session.scalar(select(func.count()).select_from(DoNotContact)) == 1
    agent = signed_in(app, tenant, "agent@demo.test")
    assert reference in agent.get(f"/t/{tenant.slug}/leads?view=overdue").text
    # The won lead is the customer of today's first refund request: its sales history shows.
    first = references[0].split("-")[1]
    assert 'id="sales-history"' in agent.get(f"/t/{tenant.slug}/tickets/{first}").text


def test_the_demo_has_months_of_history_that_the_trail_confirms(app, runner, demo):
    tenant, _lines, references = demo
    with app.app_context(), tenant_context(tenant):
        received = list(
            db.session.scalars(select(Ticket.created_at).where(Ticket.reference.not_in(references)))
        )
        escalations = db.session.scalar(select(func.count()).select_from(Escalation))
        concluded = db.session.scalar(
            select(func.count()).select_from(Escalation).where(Escalation.outcome.is_not(None))
        )
        won = db.session.scalar(select(func.count()).select_from(Lead).where(Lead.stage == "won"))
    weeks = {(at.isocalendar().year, at.isocalendar().week) for at in received}
    assert len(received) >= 100 and len(weeks) >= 15
    assert escalations >= 5 and 0 < concluded <= escalations and won >= 2
    today = utcnow().date()
    period = ("--from", (today - timedelta(weeks=17)).isoformat(), "--to", today.isoformat())
    verified = runner.invoke(args=["reports", "verify", "--tenant", tenant.slug, *period])
    assert verified.exit_code == 0 and verified.output.rstrip().endswith("measures agree"), verified.output
    chain = runner.invoke(args=["audit", "verify", "--tenant", tenant.slug])
    assert chain.exit_code == 0, chain.output
