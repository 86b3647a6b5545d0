"""Column types shared by the application's models."""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

from sqlalchemy import DateTime
from sqlalchemy.types import TypeDecorator

# Set only by ``simulated_time``: the demo seed plays months of a desk's history through
# the real services, each step at the moment it happened.
_simulated_now: ContextVar[datetime | None] = ContextVar("simulated_now", default=None)


def utcnow() -> datetime:
    """Now, in UTC (the one clock every service reads)."""
    simulated = _simulated_now.get()
    return simulated if simulated is not None else datetime.now(UTC)


@contextmanager
def simulated_time(at: datetime) -> Iterator[None]:
    """Run the block as if it were ``at`` (aware), for seeding a demo's past."""
    token = _simulated_now.set(at)
    try:
        yield
    finally:
        _simulated_now.reset(token)


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC instant on every database: SQLite keeps no offset, so values
    are stored as naive UTC there and given their zone back on the way out."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
