"""Where the desk itself may connect: the URLs of webhook receivers and of call
recordings, and the mail servers of inbound mailboxes, are given by tenants, so they must
not lead into our own network."""

import ipaddress
import socket
from urllib.parse import urlsplit

from flask import current_app
from flask_babel import lazy_gettext as _l

from crm.errors import DomainError


def check_public_url(url: str, field: str) -> str:
    """An http(s) URL whose host resolves only to public addresses (no loopback, private,
    link-local or reserved ones, unless WEBHOOKS_ALLOW_PRIVATE says so)."""
    url = (url or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname or len(url) > 500:
        raise DomainError(_l("Give an http or https URL of at most 500 characters."), field)
    if current_app.config.get("WEBHOOKS_ALLOW_PRIVATE"):
        return url
    if not is_public_host(parts.hostname, parts.port or 443, field):
        raise DomainError(
            _l("This URL leads to a private or local address, which the desk may not reach."), field
        )
    return url


def is_public_host(host: str, port: int, field: str) -> bool:
    """Whether every address ``host`` resolves to is a public one; a DomainError on
    ``field`` if it does not resolve."""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, port)}
    except (socket.gaierror, UnicodeError, ValueError):
        raise DomainError(_l("This host name does not resolve."), field) from None
    return all(
        ip.is_global and not ip.is_multicast
        for ip in (ipaddress.ip_address(address.split("%")[0]) for address in addresses)
    )
