"""The edge of the app (issue 10, findings 3, 6 and 7): links built on PUBLIC_BASE_URL and
only configured hosts served; the security and caching headers of every response; the
client address behind trusted proxies; Retry-After on every 429."""

import re
from collections.abc import Callable, Iterator
from io import BytesIO
from pathlib import Path

import pytest
from flask import Flask, abort
from sqlalchemy import func, select, update

from crm import create_app
from crm.access import client_ip
from crm.config import ConfigError, from_environment
from crm.extensions import db
from crm.notify.models import OutboxMessage
from crm.provisioning.models import TenantSettings
from crm.tickets.links import tracking_url
from crm.tickets.models import Ticket
from tests.conftest import CSRF_RE, acting_for, login
from tests.mail import Mailbox
from tests.test_portal import LINK_RE, PDF, TOKEN_RE, form_tokens, good_fields, send_form, submitted

TRACKING_LINK_RE = re.compile(r"https?://\S+/track/[A-Za-z0-9_-]+")
PUBLIC_BASE = "https://desk.example.com/help"


@pytest.fixture
def make_app(app: Flask, tmp_path: Path) -> Iterator[Callable[..., Flask]]:
    """Apps on the test database with their own edge settings (``config`` on top)."""
    made: list[Flask] = []

    def make(**config) -> Flask:
        shared = ("TESTING", "SQLALCHEMY_DATABASE_URI", "PASSWORD_HASH_METHOD", "UPLOAD_FOLDER")
        new_app = create_app({**{key: app.config[key] for key in shared}, "REDIS_URL": None, **config})
        made.append(new_app)
        return new_app

    yield make
    for made_app in made:
        with made_app.app_context():
            db.engine.dispose()


def ticket_count(app: Flask, tenant) -> int:
    with acting_for(app, tenant) as session:
        return session.scalar(select(func.count()).select_from(Ticket))


def outbox_bodies(app: Flask, tenant) -> list[str]:
    with acting_for(app, tenant) as session:
        return list(session.scalars(select(OutboxMessage.body)))


# --- finding 3: links come from configuration, never from the request's Host ----------------


def test_a_form_sent_with_another_host_is_refused_and_mails_nothing(app, client, make_tenant):
    tenant = make_tenant()
    response = client.post(
        f"/t/{tenant.slug}/refund",
        data={**form_tokens(client, tenant.slug), **good_fields()},
        headers={"Host": "evil.example"},
    )
    assert response.status_code == 400
    assert "The request could not be understood." in response.text
    assert "evil.example" not in response.text
    assert ticket_count(app, tenant) == 0
    assert outbox_bodies(app, tenant) == []


@pytest.mark.parametrize(
    "path", ["/", "/t/{slug}/refund", "/t/{slug}/login", "/t/{slug}/nowhere", "/healthz"]
)
def test_any_page_asked_for_under_another_host_is_a_400_page_never_a_500(client, make_tenant, path):
    tenant = make_tenant()
    response = client.get(path.format(slug=tenant.slug), headers={"Host": "evil.example:8080"})
    assert response.status_code == 400
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_receipt_page_and_email_link_to_the_public_base_url_whatever_host_was_used(
    make_app,
    make_tenant,
    smtp_server: Mailbox,
):
    mail_app = make_app(
        PUBLIC_BASE_URL=PUBLIC_BASE,
        TRUSTED_HOSTS=["alt.example"],  # served, but not where customers are sent
        SMTP_URL=f"smtp://127.0.0.1:{smtp_server.port}",
    )
    tenant = make_tenant()
    client = mail_app.test_client()
    url, host = f"/t/{tenant.slug}/refund", "http://alt.example"
    page = client.get(url, base_url=host)
    tokens = {
        "csrf_token": CSRF_RE.search(page.text).group(1),
        "submission_token": TOKEN_RE.search(page.text).group(1),
    }
    sent = client.post(url, base_url=host, data={**tokens, **good_fields(email="lilei@example.test")})
    assert sent.status_code == 302, sent.text
    receipt = client.get(sent.location, base_url=host)
    assert receipt.status_code == 200

    public_track = f"{PUBLIC_BASE}/t/{tenant.slug}/track/"
    [link] = LINK_RE.findall(receipt.text)
    assert link.startswith(public_track)
    [message] = smtp_server.messages
    [mailed] = TRACKING_LINK_RE.findall(message.get_content())  # each email has its own token
    assert mailed.startswith(public_track)
    assert "alt.example" not in message.get_content() and "localhost" not in message.get_content()


def test_staff_see_the_public_form_address_on_the_public_base_url(make_app, make_tenant, make_user):
    edge_app = make_app(PUBLIC_BASE_URL=PUBLIC_BASE)
    tenant = make_tenant()
    client = edge_app.test_client()
    assert login(client, tenant, make_user(tenant, "admin")).status_code == 302
    settings = client.get(f"/t/{tenant.slug}/admin/settings")
    assert f"{PUBLIC_BASE}/t/{tenant.slug}/refund" in settings.text
    assert "http://localhost/t/" not in settings.text


def test_in_production_only_the_public_host_is_served_and_hsts_is_sent(make_app, make_tenant):
    edge_app = make_app(CRM_ENV="production", PUBLIC_BASE_URL="https://desk.example.com")
    tenant = make_tenant()
    client = edge_app.test_client()
    assert client.get(f"/t/{tenant.slug}/refund").status_code == 400  # "localhost"
    page = client.get(f"/t/{tenant.slug}/refund", headers={"Host": "desk.example.com"})
    assert page.status_code == 200
    assert page.headers["Strict-Transport-Security"].startswith("max-age=31536000")


PRODUCTION = {
    "CRM_ENV": "production",
    "SECRET_KEY": "s" * 32,
    "AUDIT_SIGNING_KEY": "A" * 43 + "=",  # base64 of 32 zero bytes: a valid Ed25519 private key
}


@pytest.mark.parametrize(
    "value, says",
    [
        (None, "PUBLIC_BASE_URL must be set when CRM_ENV=production"),
        ("", "PUBLIC_BASE_URL must be set when CRM_ENV=production"),
        ("desk.example.com", "is not a base URL"),
        ("ftp://desk.example.com", "is not a base URL"),
        ("https://", "is not a base URL"),
        ("https://user:pw@desk.example.com", "is not a base URL"),
        ("https://desk.example.com/?next=x", "is not a base URL"),
        ("https://desk.example.com/#top", "is not a base URL"),
        ("https://desk example.com", "is not a base URL"),
        ("https://desk.example.com:99999", "invalid port"),
        ("https://desk.example.com:https", "invalid port"),
    ],
)
def test_production_will_not_start_without_a_well_formed_public_base_url(tmp_path, value, says):
    env = {**PRODUCTION, **({} if value is None else {"PUBLIC_BASE_URL": value})}
    with pytest.raises(ConfigError, match=re.escape(says)) as refused:
        from_environment(tmp_path, env)
    assert "http(s)://host[:port][/path]" in str(refused.value) or value in (None, "")


@pytest.mark.parametrize(
    "value, base",
    [
        ("https://desk.example.com", "https://desk.example.com"),
        ("https://desk.example.com/", "https://desk.example.com"),
        ("http://10.0.0.5:8080/crm/", "http://10.0.0.5:8080/crm"),
    ],
)
def test_a_well_formed_public_base_url_is_kept_without_its_trailing_slash(tmp_path, value, base):
    assert from_environment(tmp_path, {**PRODUCTION, "PUBLIC_BASE_URL": value})["PUBLIC_BASE_URL"] == base


@pytest.mark.parametrize(
    "name, value, says",
    [
        ("TRUSTED_PROXIES", "one", "TRUSTED_PROXIES must be a whole number"),
        ("TRUSTED_PROXIES", "-1", "TRUSTED_PROXIES must be a whole number"),
        ("TRUSTED_HOSTS", "desk.example.com, evil example", "'evil example' is not a host name"),
    ],
)
def test_proxy_and_host_settings_are_checked_at_start_up(tmp_path, name, value, says):
    with pytest.raises(ConfigError, match=re.escape(says)):
        from_environment(tmp_path, {name: value})


# --- finding 6: headers and caching ---------------------------------------------------------


def assert_hardened(response, *, page: bool = True) -> None:
    headers = response.headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["X-Frame-Options"] == "DENY"
    policy = headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy
    if page:
        assert "script-src 'self'" in policy and "'unsafe-inline'" not in policy
    else:
        assert "default-src 'none'" in policy and "sandbox" in policy


def test_the_tracking_page_receipt_and_evidence_are_never_stored_by_browsers_or_proxies(
    app, client, make_tenant
):
    tenant = make_tenant()
    response = send_form(client, tenant.slug, good_fields())
    receipt = client.get(response.headers["Location"])
    tracking_url = LINK_RE.search(receipt.text).group(1).replace("http://localhost", "")
    page = client.get(tracking_url)
    csrf = CSRF_RE.search(page.text).group(1)
    reply = client.post(
        f"{tracking_url}/reply",
        data={"csrf_token": csrf, "body": "The bill.", "attachments": [(BytesIO(PDF), "bill.pdf")]},
        content_type="multipart/form-data",
    )
    assert reply.status_code == 302
    page = client.get(tracking_url)
    download = client.get(re.search(r'href="([^"]+/files/\d+)"', page.text).group(1))
    assert download.status_code == 200 and download.headers["Content-Type"] == "application/pdf"
    download.close()
    for response in (receipt, page, download):
        assert response.headers["Cache-Control"] == "no-store"
    assert_hardened(receipt)
    assert_hardened(page)
    assert_hardened(download, page=False)


def test_staff_pages_cannot_be_framed_or_cached(client, signed_in):
    tenant, _admin = signed_in("admin")
    for path in ("/", "/tickets", "/admin/settings", "/audit"):
        response = client.get(f"/t/{tenant.slug}{path}")
        assert response.status_code == 200, path
        assert_hardened(response)
        assert response.headers["Cache-Control"] == "no-store"


def test_static_files_and_error_pages_are_not_sniffed(client, make_tenant):
    tenant = make_tenant()
    for path in ("/static/ledgerdesk.css", "/static/ledgerdesk.js"):
        static = client.get(path)
        assert static.status_code == 200
        assert static.headers["X-Content-Type-Options"] == "nosniff"
        assert "no-store" not in static.headers.get("Cache-Control", "")  # may be cached
        static.close()
    missing = client.get(f"/t/{tenant.slug}/track/no-such-link")
    assert missing.status_code == 404
    assert_hardened(missing)


def test_hsts_only_over_https_outside_production(client, make_tenant):
    tenant = make_tenant()
    assert "Strict-Transport-Security" not in client.get(f"/t/{tenant.slug}/refund").headers
    secure = client.get(f"/t/{tenant.slug}/refund", base_url="https://localhost")
    assert secure.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


def test_pages_carry_no_inline_script_handler_or_style(client, signed_in):
    """What the policy forbids is not in the HTML either (the browser test checks the rest)."""
    tenant, _admin = signed_in("admin")
    pages = [f"/t/{tenant.slug}{path}" for path in ("/", "/tickets", "/canned-replies", "/admin/settings")]
    pages.append(f"/t/{tenant.slug}/refund")
    for path in pages:
        html = client.get(path).text
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), path
        assert not re.search(r"\son[a-z]+=", html), path
        assert not re.search(r"<style|\sstyle=", html), path


# --- finding 7: proxies and 429 -------------------------------------------------------------


def with_probe(edge_app: Flask) -> Flask:
    """Two routes for the test: the client address as the app sees it, and a bare 429."""
    edge_app.add_url_rule("/_probe/ip", "probe_ip", lambda: client_ip() or "")
    edge_app.add_url_rule("/_probe/busy", "probe_busy", lambda: abort(429))
    return edge_app


@pytest.mark.parametrize("proxies, seen", [(1, "203.0.113.9"), (0, "127.0.0.1")])
def test_the_client_address_comes_from_trusted_proxies_only(make_app, proxies, seen):
    client = with_probe(make_app(TRUSTED_PROXIES=proxies)).test_client()
    # The first address is whatever the client claimed; the proxy appended what it saw.
    forwarded = {"X-Forwarded-For": "198.51.100.66, 203.0.113.9", "X-Forwarded-Proto": "https"}
    response = client.get("/_probe/ip", headers=forwarded)
    assert response.text == seen
    assert ("Strict-Transport-Security" in response.headers) == bool(proxies)


def test_customers_behind_one_proxy_get_a_rate_limit_each(app, make_app, make_tenant):
    tenant = make_tenant()
    with acting_for(app, tenant) as session:
        session.execute(update(TenantSettings).values(form_submissions_per_hour=1))
        session.commit()
    client = make_app(TRUSTED_PROXIES=1).test_client()

    def send_from(address: str, phone: str) -> int:
        return client.post(
            f"/t/{tenant.slug}/refund",
            data={**form_tokens(client, tenant.slug), **good_fields(phone=phone)},
            headers={"X-Forwarded-For": address},
        ).status_code

    assert send_from("203.0.113.1", "13800138001") == 302
    assert send_from("203.0.113.1", "13800138002") == 429
    assert send_from("203.0.113.2", "13800138003") == 302  # another customer, same proxy


def test_a_rate_limited_form_says_when_to_come_back(app, client, make_tenant):
    tenant = make_tenant()
    with acting_for(app, tenant) as session:
        session.execute(update(TenantSettings).values(form_submissions_per_hour=1))
        session.commit()
    assert send_form(client, tenant.slug, good_fields()).status_code == 302
    limited = send_form(client, tenant.slug, good_fields(phone="13800138009"))
    assert limited.status_code == 429
    assert 60 < int(limited.headers["Retry-After"]) <= 3600  # the hour's window, as counted


def test_any_429_says_when_to_come_back(make_app):
    busy = with_probe(make_app()).test_client().get("/_probe/busy")
    assert busy.status_code == 429 and int(busy.headers["Retry-After"]) > 0


def test_links_built_outside_a_request_use_the_public_base_url_too(make_app, make_tenant):
    """Jobs, the SLA sweep and the demo seed build links with no request at all."""
    edge_app = make_app(PUBLIC_BASE_URL=PUBLIC_BASE)
    tenant = make_tenant()
    done = submitted(edge_app, tenant)
    with acting_for(edge_app, tenant):
        assert (
            tracking_url(done.tracking_token) == f"{PUBLIC_BASE}/t/{tenant.slug}/track/{done.tracking_token}"
        )
