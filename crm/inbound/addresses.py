"""The plus-address a ticket's replies come back to: the tenant's support address with
the ticket's number and a signature of it (SECRET_KEY), so nobody can write into a
ticket by guessing numbers: ``support+1042-3f9c0a1b2c4d@provider.example``."""

import hashlib
import hmac
import re

from flask import current_app

from crm.provisioning.service import tenant_settings

TOKEN_RE = re.compile(r"\+(\d{1,15})-([0-9a-f]{12})@")


def signature(tenant_id: int, ticket_id: int) -> str:
    message = f"reply:{tenant_id}:{ticket_id}".encode()
    return hmac.new(current_app.secret_key.encode(), message, hashlib.sha256).hexdigest()[:12]


def reply_address(ticket) -> str | None:
    """Where replies about ``ticket`` go, if the tenant has a support address."""
    support = tenant_settings().support_address
    if not support or "@" not in support:
        return None
    local, _, domain = support.partition("@")
    return f"{local}+{ticket.number}-{signature(ticket.tenant_id, ticket.id)}@{domain}"
