"""The customer's secret tracking links: random tokens, of which only digests are kept."""

import hashlib
import secrets
from datetime import timedelta
from urllib.parse import urlsplit

from flask import current_app

from crm.columns import utcnow
from crm.extensions import insert_rows
from crm.tickets.models import Ticket, TrackingLink

LINK_DAYS = 365


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def mint_tracking_link(ticket: Ticket) -> str:
    """A new token (192 random bits) that opens ``ticket``; only its digest is stored."""
    token = secrets.token_urlsafe(24)
    row = {
        "token_hash": token_digest(token),
        "ticket_id": ticket.id,
        "expires_at": utcnow() + timedelta(days=LINK_DAYS),
    }
    insert_rows(TrackingLink, [row])  # one INSERT, no object: nothing reads it back
    return token


def tracking_url(token: str) -> str:
    return external_url("portal.track", token=token)


def external_url(endpoint: str, **values) -> str:
    """An absolute link into the tenant's pages, always on PUBLIC_BASE_URL.

    Never on the request's Host header: anyone can send a request with ``Host:
    evil.example``, and a link built on it would carry a customer's secret token there."""
    current_app.inject_url_defaults(endpoint, values)  # the tenant's /t/<slug> prefix
    base = urlsplit(current_app.config["PUBLIC_BASE_URL"])
    adapter = current_app.url_map.bind(base.netloc, script_name=base.path or "/", url_scheme=base.scheme)
    return adapter.build(endpoint, values, force_external=True)
