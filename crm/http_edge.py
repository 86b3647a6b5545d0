"""The edge of the app: which hosts and proxies it believes, and the headers every
response carries (content security policy, framing, referrer, sniffing, HSTS, caching).

Set once here, not per view, so a new page is covered without anyone remembering."""

from urllib.parse import urlsplit

from flask import Flask, Response, current_app, request
from flask.globals import request_ctx
from werkzeug.exceptions import BadRequest, SecurityError
from werkzeug.middleware.proxy_fix import ProxyFix

from crm.ratelimit import breach_of_request
from crm.tickets.links import external_url

# Pages load only our own scripts, styles and fonts (templates carry no inline script,
# event handler or style attribute: crm/static has them); Bootstrap's CSS draws a few
# icons from data: URIs. No page may be framed: the public form included (see README).
PAGE_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
# Anything that is not a page (an evidence file, JSON) must never run as one, even if a
# browser is talked into rendering it: nothing loads, and it gets a unique origin.
FILE_POLICY = "default-src 'none'; frame-ancestors 'none'; sandbox"
HSTS = "max-age=31536000; includeSubDomains"
# Development and tests reach the app on loopback (the test client says "localhost").
LOOPBACK_HOSTS = ("localhost", "127.0.0.1")
# A 429 that no rate limit timed still says when to retry.
DEFAULT_RETRY_AFTER_SECONDS = 60


def trusted_hosts(config) -> list[str]:
    """PUBLIC_BASE_URL's host, the TRUSTED_HOSTS list, and loopback outside production."""
    hosts = {urlsplit(config["PUBLIC_BASE_URL"]).hostname, *(config.get("TRUSTED_HOSTS") or ())}
    if config.get("CRM_ENV") != "production":
        hosts.update(LOOPBACK_HOSTS)
    return sorted(hosts)


def refuse_untrusted_host(error: SecurityError):
    """A request naming a Host we do not serve gets the ordinary 400 page.

    Flask refuses the host before it can route, which leaves the request with no URL
    adapter, and the error page could not build its links; it gets one on
    PUBLIC_BASE_URL, then the app's own 400 handler answers."""
    context = request_ctx._get_current_object()
    if context.url_adapter is None:
        app = context.app
        base = urlsplit(app.config["PUBLIC_BASE_URL"])
        context.url_adapter = app.url_map.bind(
            base.netloc, script_name=base.path or "/", url_scheme=base.scheme, subdomain=""
        )
    return context.app.handle_http_exception(BadRequest())


def is_static(endpoint: str | None) -> bool:
    return endpoint is not None and (endpoint == "static" or endpoint.endswith(".static"))


def add_edge_headers(response: Response) -> Response:
    headers = response.headers
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "same-origin"  # tracking links carry their secret in the path
    headers["X-Frame-Options"] = "DENY"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    headers.setdefault(
        "Content-Security-Policy", PAGE_POLICY if response.mimetype == "text/html" else FILE_POLICY
    )
    if request.is_secure or current_app.config.get("CRM_ENV") == "production":
        headers["Strict-Transport-Security"] = HSTS
    if not is_static(request.endpoint):
        # Pages and files hold personal data (a tracking page behind its secret link, the
        # receipt, every staff page, evidence): no browser or proxy keeps a copy.
        headers["Cache-Control"] = "no-store"
    if response.status_code == 429 and "Retry-After" not in headers:
        headers["Retry-After"] = str(_retry_after())
    return response


def _retry_after() -> int:
    """Seconds until the breached rate limit's window ends, else the default."""
    breach = breach_of_request()
    return DEFAULT_RETRY_AFTER_SECONDS if breach is None else breach.seconds_left()


def init_app(app: Flask) -> None:
    """The trusted hosts and proxies, and the edge's headers on every response."""
    app.config["TRUSTED_HOSTS"] = trusted_hosts(app.config)
    proxies = app.config.get("TRUSTED_PROXIES") or 0
    if proxies:
        # The client address (per-IP limits, the audit trail) and the scheme (HSTS, secure
        # cookies) as the proxies saw them. The Host header is the client's own and
        # checked against TRUSTED_HOSTS; X-Forwarded-Host is not believed.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=0, x_port=0)
    app.register_error_handler(SecurityError, refuse_untrusted_host)
    app.after_request(add_edge_headers)
    app.jinja_env.globals["public_url"] = external_url
