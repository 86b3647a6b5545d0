"""Rate limits on views: fixed windows counted by the ``limits`` library, in Redis
(``RATELIMIT_STORAGE_URI``), and in the process's memory while Redis cannot be reached.

A limited view counts only its own limits, with one storage call each. Flask-Limiter,
used before, also ran a pass on every request for limits declared nowhere here, resolved
each view's limits again on every call and kept per-request state for headers that are
off: 6% of a hosted-form post's CPU, more than its Redis round trips
(docs/performance.md).
"""

import functools
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps

from flask import Flask, Response, current_app, g, request
from flask.typing import ResponseReturnValue
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import FixedWindowRateLimiter
from werkzeug.exceptions import TooManyRequests

from crm.config import REDIS_TIMEOUT_SECONDS

log = logging.getLogger(__name__)

EXTENSION = "ledgerdesk_rate_limits"
RECHECK_SECONDS = 5  # while Redis is unreachable, how often to try it again


@dataclass(frozen=True)
class Breach:
    """A limit a request went over, and when its window ends."""

    rate: RateLimitItem
    reset_at: float

    def seconds_left(self) -> int:
        """Whole seconds, at least 1, until the window ends (a 429's Retry-After)."""
        return max(1, math.ceil(self.reset_at - time.time()))


class _Counters:
    """One app's counters: the configured storage, and memory while it is unreachable."""

    def __init__(self, storage_uri: str) -> None:
        self.shared = FixedWindowRateLimiter(_storage(storage_uri))
        self.memory = FixedWindowRateLimiter(MemoryStorage())
        self.unreachable_since: float | None = None
        self.last_try = 0.0

    def count(self, method: str, *args):
        """``method`` of the shared counters (hit, test, get_window_stats), or of the
        memory ones while the shared storage is unreachable."""
        if self.unreachable_since is not None:
            if time.monotonic() - self.last_try < RECHECK_SECONDS:
                return getattr(self.memory, method)(*args)
            self.last_try = time.monotonic()
        try:
            result = getattr(self.shared, method)(*args)
        except Exception:  # a storage error of any kind: the limits still hold, in memory
            if self.unreachable_since is None:
                log.warning("Rate limit storage unreachable: counting in memory")
                self.unreachable_since = self.last_try = time.monotonic()
            return getattr(self.memory, method)(*args)
        if self.unreachable_since is not None:
            log.info("Rate limit storage reachable again")
            self.unreachable_since = None
        return result


def _storage(uri: str):
    if uri.startswith(("redis://", "rediss://", "redis+unix://")):
        timeouts = {"socket_connect_timeout": REDIS_TIMEOUT_SECONDS, "socket_timeout": REDIS_TIMEOUT_SECONDS}
        return storage_from_string(uri, **timeouts)
    return storage_from_string(uri)


@functools.lru_cache(maxsize=64)
def _rate(text: str) -> RateLimitItem:
    return parse(text)


def init_app(app: Flask) -> None:
    app.extensions[EXTENSION] = _Counters(app.config.get("RATELIMIT_STORAGE_URI") or "memory://")


def limit(
    rate: str | Callable[[], str],
    *,
    key: Callable[[], str],
    methods: tuple[str, ...] | None = None,
    counts: Callable[[Response], bool] | None = None,
    on_breach: Callable[[Breach], ResponseReturnValue] | None = None,
    scope: str | None = None,
) -> Callable:
    """A decorator: at most ``rate`` ("60/hour", or a function that says) requests per
    ``key()`` to the view, or to every view decorated with the same ``scope``.

    ``methods``: only these are counted. ``counts``: only responses it accepts are
    counted, after the view (a form's accepted submissions), though each request is
    refused once the limit is reached. Over the limit: ``on_breach(breach)``'s response,
    else the 429 page; either way with Retry-After."""

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def limited(*args, **kwargs):
            if methods is not None and request.method not in methods:
                return view(*args, **kwargs)
            if not current_app.config.get("RATELIMIT_ENABLED", True):
                return view(*args, **kwargs)
            counters: _Counters = current_app.extensions[EXTENSION]
            item = _rate(rate() if callable(rate) else rate)
            identifiers = (key(), scope or request.endpoint or "")
            if counts is not None:  # apart from a limit of every request with the same rate
                identifiers += ("accepted",)
            if not counters.count("test" if counts else "hit", item, *identifiers):
                return _refuse(counters, item, identifiers, on_breach)
            if counts is None:
                return view(*args, **kwargs)
            response = current_app.make_response(view(*args, **kwargs))
            if counts(response):
                counters.count("hit", item, *identifiers)
            return response

        return limited

    return decorate


def _refuse(counters: _Counters, item: RateLimitItem, identifiers: tuple, on_breach) -> Response:
    """The 429 (``on_breach``'s page, else the error page). Its Retry-After, from the
    breach kept for the request, is the edge's, as for every 429 (crm.http_edge)."""
    window = counters.count("get_window_stats", item, *identifiers)
    breach = g.rate_limit_breach = Breach(item, window.reset_time)
    if on_breach is None:
        raise TooManyRequests()
    response = current_app.make_response(on_breach(breach))
    response.status_code = 429
    return response


def breach_of_request() -> Breach | None:
    """The limit the current request went over, if any."""
    return g.get("rate_limit_breach")
