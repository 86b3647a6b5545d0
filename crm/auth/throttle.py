"""Sign-in throttles: failures counted per email and source address, and per address
alone, each row locked while it is read and counted so parallel guesses are all
counted."""

import ipaddress
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from crm.audit.chain import digest
from crm.auth.models import FailureCount, LoginSourceThrottle, LoginThrottle
from crm.columns import utcnow
from crm.extensions import db, insert_or_ignore

# An IPv6 subscriber usually holds a whole /64: counting single addresses there would
# hand one attacker 2**64 fresh counters.
IPV6_PREFIX = 64


def source_of(ip: str | None) -> str:
    """The source a failure is counted against: an IPv4 address, or an IPv6 /64."""
    try:
        address = ipaddress.ip_address((ip or "").split("%")[0])
    except ValueError:
        return "unknown"
    if address.version == 6 and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/{IPV6_PREFIX}", strict=False))
    return str(address)


def _row(model: type[FailureCount], **key: str) -> FailureCount:
    """The throttle row for ``key``, created if missing and locked for this transaction."""
    insert_or_ignore(model, {**key, "failures": 0, "window_started_at": utcnow()})
    return db.session.scalars(select(model).filter_by(**key).with_for_update()).one()


@dataclass(frozen=True)
class Throttles:
    """The two counters one sign-in attempt is checked against and counted on."""

    source: LoginSourceThrottle
    pair: LoginThrottle


def throttles_for(email: str, ip: str | None) -> Throttles:
    """Both counters of an attempt, locked: always the address first, then the pair, so
    two attempts never wait on each other in opposite orders."""
    source = digest(source_of(ip))
    return Throttles(
        source=_row(LoginSourceThrottle, source_digest=source),
        pair=_row(LoginThrottle, email_digest=digest(email), source_digest=source),
    )


def seconds_locked(row: FailureCount, now: datetime) -> int:
    """How many seconds the lock has left (0: not locked)."""
    if row.locked_until is None or row.locked_until <= now:
        return 0
    return math.ceil((row.locked_until - now).total_seconds())


def count_failure(
    row: FailureCount, now: datetime, *, max_failures: int, window_minutes: int, lock_minutes: int
) -> bool:
    """Count one failure in the row's window; True if it reached the limit and locked."""
    if now - row.window_started_at > timedelta(minutes=window_minutes):
        row.failures, row.window_started_at = 0, now
    row.failures += 1
    if row.failures < max_failures:
        return False
    row.locked_until = now + timedelta(minutes=lock_minutes)
    row.failures, row.window_started_at = 0, now
    return True


def clear(row: FailureCount) -> None:
    row.failures, row.locked_until = 0, None
