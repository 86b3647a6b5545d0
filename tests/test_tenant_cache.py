"""A process keeps the tenants and settings its public pages read, and the API keys it
has checked; every change reaches it: at the commit in the process that made it, by
notification in the others."""

import time

import psycopg
from sqlalchemy import update
from sqlalchemy.engine import make_url

from crm.audit.service import Actor
from crm.extensions import db
from crm.provisioning import service as provisioning
from crm.provisioning.models import TenantSettings
from tenants import cache as tenant_cache
from tests.conftest import acting_for, requires_postgres
from tests.test_api import call, make_key


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
