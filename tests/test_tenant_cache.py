"""A process keeps the tenants and settings its public pages read, and the API keys it
has checked; every change reaches it: at the commit in the process that made it, by
notification in the others."""

import time

import psycopg
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.engine import make_url

from crm.audit.service import Actor
from crm.extensions import db
from crm.policies import service as policies
from crm.provisioning import service as provisioning
from crm.provisioning.models import TenantSettings
from crm.sla import versions
from crm.sla.clocks import clocks_of
from crm.sla.models import ConfigKind
from crm.sla.rules import Policy, Rule
from crm.tickets import service as tickets
from crm.webhooks import service as webhooks
from crm.webhooks.models import DeliveryStatus, WebhookDelivery
from tenants import cache as tenant_cache
from tests.conftest import acting_for, requires_postgres
from tests.test_api import call, make_key
from tests.test_policies import published
from tests.test_ticket_service import refund_request

OPERATOR = Actor.operator("test")


def form_page(client, tenant):
    return client.get(f"/t/{tenant.slug}/refund")


def wait_until(condition, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_a_suspended_tenant_s_pages_are_gone_at_once(app, client, make_tenant):
    tenant = make_tenant()
    assert form_page(client, tenant).status_code == 200
    assert form_page(client, tenant).status_code == 200  # served from the kept copy, if any
    with app.app_context():
        provisioning.suspend_tenant(tenant.slug, actor=Actor.operator("test"))
        db.session.commit()
    assert form_page(client, tenant).status_code == 404


def test_a_settings_change_shows_on_the_next_request(app, client, make_tenant):
    tenant = make_tenant()
    assert "Write to our DPO" not in form_page(client, tenant).text
    with acting_for(app, tenant) as session:
        session.execute(update(TenantSettings).values(privacy_notice="Write to our DPO"))
        session.commit()
    assert "Write to our DPO" in form_page(client, tenant).text


@requires_postgres
def test_another_process_s_change_reaches_this_one_by_notification(app, client, make_tenant):
    tenant = make_tenant()
    with app.app_context():
        engine = db.engine
        assert wait_until(lambda: tenant_cache.keeping(engine)), "the listener never connected"
    conninfo = make_url(app.config["OWNER_DATABASE_URI"]).set(drivername="postgresql")
    conninfo = conninfo.render_as_string(hide_password=False)
    assert "Write to our DPO" not in form_page(client, tenant).text

    with psycopg.connect(conninfo) as other:  # raw SQL: no session, no notification
        other.execute(
            "UPDATE tenant_settings SET privacy_notice = 'Write to our DPO' WHERE tenant_id = %s",
            (tenant.id,),
        )
    # The kept copy is what this process serves: the change is not seen...
    assert "Write to our DPO" not in form_page(client, tenant).text
    with psycopg.connect(conninfo) as other:  # ...until a commit notifies, as the services' do
        other.execute("SELECT pg_notify(%s, '')", (tenant_cache.CHANNEL,))
    assert wait_until(lambda: "Write to our DPO" in form_page(client, tenant).text)


@requires_postgres
def test_a_key_revoked_in_another_process_is_refused_once_it_notifies(app, client, make_tenant):
    tenant = make_tenant()
    with app.app_context():
        engine = db.engine
        assert wait_until(lambda: tenant_cache.keeping(engine)), "the listener never connected"
    secret = make_key(app, tenant, "dnc:read")
    check = "/dnc/check?phone=13800138000"
    assert call(client, "GET", tenant, check, secret).status_code == 200
    conninfo = make_url(app.config["OWNER_DATABASE_URI"]).set(drivername="postgresql")
    with psycopg.connect(conninfo.render_as_string(hide_password=False)) as other:
        other.execute("UPDATE api_keys SET revoked_at = now() WHERE tenant_id = %s", (tenant.id,))
        assert call(client, "GET", tenant, check, secret).status_code == 200  # the kept copy
        other.execute("SELECT pg_notify(%s, '')", (tenant_cache.CHANNEL,))
    assert wait_until(lambda: call(client, "GET", tenant, check, secret).status_code == 401)


def submitted(app, tenant, nonce: str):
    """A form submission's ticket: (its pinned policy version, its clocks' SLA version,
    the webhook deliveries it made)."""
    with acting_for(app, tenant) as session:
        deliveries = select(func.count()).select_from(WebhookDelivery)
        before = session.scalar(deliveries)
        ticket = tickets.submit_refund_request(refund_request(), nonce=nonce, ip=None).ticket
        session.flush()
        sla_versions = {c.config_version_id for c in clocks_of("ticket", ticket.id) if c.rule.isdigit()}
        made = session.scalar(deliveries) - before
        session.commit()
        return ticket.policy_version_id, sla_versions, made


@pytest.fixture
def tenant_with_deliveries(app, make_tenant, monkeypatch):
    """A tenant whose webhook deliveries go nowhere, given up afterwards: another test's
    sweep of every tenant's due deliveries must not find them."""
    monkeypatch.setitem(app.config, "WEBHOOKS_ALLOW_PRIVATE", True)  # nothing listens there
    tenant = make_tenant()
    yield tenant
    with acting_for(app, tenant) as session:
        session.execute(update(WebhookDelivery).values(status=DeliveryStatus.FAILED))
        session.commit()


@requires_postgres
def test_what_a_submission_reads_is_kept_until_a_change_commits(app, tenant_with_deliveries):
    """The policy in force, the SLA configuration and the webhook endpoints are read
    from the process's copies, and a committed change reaches the next submission."""
    tenant = tenant_with_deliveries
    with app.app_context():
        engine = db.engine
        assert wait_until(lambda: tenant_cache.keeping(engine)), "the listener never connected"
    first = submitted(app, tenant, "kept-1")
    assert first[2] == 0 and submitted(app, tenant, "kept-2") == first

    number = published(app, tenant)
    with acting_for(app, tenant) as session:
        policy = policies.require(number)
        stricter = Policy((Rule(first_response=30, resolution=600),)).to_json()
        sla = versions.save(ConfigKind.SLA_POLICY, "default", stricter, actor=OPERATOR)
        webhooks.create_endpoint("http://127.0.0.1:9/in", ["ticket.created"], actor=OPERATOR)
        session.commit()
        policy_id, sla_id = policy.id, sla.id
    assert submitted(app, tenant, "kept-3") == (policy_id, {sla_id}, 1)

    # Raw SQL is not seen until a commit notifies, as the services' commits do.
    conninfo = make_url(app.config["OWNER_DATABASE_URI"]).set(drivername="postgresql")
    with psycopg.connect(conninfo.render_as_string(hide_password=False)) as other:
        other.execute("UPDATE webhook_endpoints SET active = false WHERE tenant_id = %s", (tenant.id,))
        assert submitted(app, tenant, "kept-4")[2] == 1  # the kept copy
        other.execute("SELECT pg_notify(%s, '')", (tenant_cache.CHANNEL,))
    assert wait_until(lambda: submitted(app, tenant, f"kept-5-{time.monotonic()}")[2] == 0)
