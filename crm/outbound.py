"""Where the desk itself may connect: the URLs of webhook receivers and of call
recordings are given by tenants' systems, so they must not lead into our own network."""

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
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(parts.hostname, parts.port or 443)}
    except (socket.gaierror, UnicodeError, ValueError):
        raise DomainError(_l("This host name does not resolve."), field) from None
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if not ip.is_global or ip.is_multicast:
            raise DomainError(
                _l("This URL leads to a private or local address, which the desk may not reach."), field
            )
    return url
