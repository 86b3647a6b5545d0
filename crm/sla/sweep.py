"""The sweep: every minute, find the clocks whose warning or due time has passed, record
the warning or breach once, run the policy's actions and tell the people concerned
(``crm.sla.breaches`` does the acting, for the sweep and for a clock's own transitions).

It reads the partial index on ``clocks.check_at`` (only clocks with something left to
detect are in it), so its cost follows the number due, not the number of tickets. A
tenant's due clocks are handled together, in one transaction and a fixed number of
statements: each kind of fact is claimed by one conditional UPDATE (``... WHERE
breached_at IS NULL RETURNING id``), so of two sweeps running at once, or one repeated,
exactly one records a breach and acts on it.
"""

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, and_, literal, select, tuple_, update

from crm import jobs
from crm.columns import utcnow
from crm.extensions import db
from crm.sla import breaches
from crm.sla.breaches import BREACHED, WARNED
from crm.sla.models import Clock, ClockState
from crm.tickets.models import Ticket
from tenants import Tenant, current_tenant_id, spanning, tenant_context

log = logging.getLogger(__name__)
BATCH = 200
SWEEP_JOB_PREFIX = "ledgerdesk-sla-sweep-"


@dataclass
class SweepResult:
    warned: int = 0
    breached: int = 0
    actions: int = 0

    def add(self, other: "SweepResult") -> None:
        self.warned += other.warned
        self.breached += other.breached
        self.actions += other.actions


def sweep(now: datetime | None = None) -> SweepResult:
    """Detect every warning and breach due by ``now``, across all tenants, each tenant's
    in its own context and transaction."""
    now = now or utcnow()
    result = SweepResult()
    after = None  # keyset: clocks that fail stay due, and the sweep still gets past them
    while True:
        rows = spanning.due_clocks(db.session, due_clocks(now, after), now, after, BATCH)
        db.session.commit()
        if not rows:
            return result
        after = (rows[-1].check_at, rows[-1].id)
        by_tenant: dict[int, list[int]] = defaultdict(list)
        for _check_at, clock_id, tenant_id in rows:
            by_tenant[tenant_id].append(clock_id)
        for tenant_id, clock_ids in by_tenant.items():
            tenant = db.session.get(Tenant, tenant_id)
            if tenant is None or not tenant.is_active:
                continue  # a suspended tenant's clocks wait for it to come back
            with tenant_context(tenant):
                result.add(_sweep_tenant(clock_ids, now))


def due_clocks(now: datetime, after: tuple[datetime, int] | None = None) -> Select:
    """The next batch of clocks, of every tenant, with a warning or breach due by ``now``:
    a range scan of the partial index on ``check_at``."""
    query = select(Clock.check_at, Clock.id, Clock.tenant_id).where(Clock.check_at <= now)
    if after is not None:
        bound = tuple_(literal(after[0], Clock.check_at.type), literal(after[1], Clock.id.type))
        query = query.where(tuple_(Clock.check_at, Clock.id) > bound)
    return query.order_by(Clock.check_at, Clock.id).limit(BATCH)


def _sweep_tenant(clock_ids: list[int], now: datetime) -> SweepResult:
    """The tenant's due clocks in one transaction; should that fail, each clock in its
    own, so that one clock that cannot be handled holds back no other."""
    for batch in (clock_ids, *([clock_id] for clock_id in clock_ids if len(clock_ids) > 1)):
        try:
            result = _sweep_clocks(batch, now)
            db.session.commit()
        except Exception:
            db.session.rollback()
            log.exception("sweep: clocks %s of tenant %s failed", batch, current_tenant_id())
            continue
        if batch is clock_ids:
            return result
    return SweepResult()


def _claim(clock_ids: list[int], now: datetime, event: str) -> set[int]:
    """Record the warning (or breach) of those of ``clock_ids`` that have one due and
    not yet recorded, at its own time; the ids this call recorded."""
    running = and_(Clock.id.in_(clock_ids), Clock.state == ClockState.RUNNING, Clock.alerts.is_(True))
    if event == WARNED:
        statement = (
            update(Clock)
            .where(running, Clock.warned_at.is_(None), Clock.warn_at <= now, Clock.breached_at.is_(None))
            .values(warned_at=Clock.warn_at, check_at=Clock.due_at)
        )
    else:
        statement = (
            update(Clock)
            .where(running, Clock.breached_at.is_(None), Clock.due_at <= now)
            .values(breached_at=Clock.due_at, check_at=None)
        )
    claimed = db.session.execute(
        statement.returning(Clock.id), execution_options={"synchronize_session": False}
    )
    return set(claimed.scalars())


def _sweep_clocks(clock_ids: list[int], now: datetime) -> SweepResult:
    # Staff actions change a ticket and then its clocks; the sweep takes the tickets'
    # locks first too, so the two never wait for each other in opposite orders.
    ticket_ids = select(Clock.subject_id).where(Clock.id.in_(clock_ids), Clock.subject_type == "ticket")
    db.session.execute(select(Ticket.id).where(Ticket.id.in_(ticket_ids)).with_for_update())
    warned = _claim(clock_ids, now, WARNED)
    breached = _claim(clock_ids, now, BREACHED)
    warned -= breached  # past due as well: the breach says it all
    if not warned and not breached:
        return SweepResult()
    clocks = {
        clock.id: clock
        for clock in db.session.scalars(
            select(Clock).where(Clock.id.in_(warned | breached)).execution_options(populate_existing=True)
        )
    }
    outcome = breaches.act([clocks[i] for i in warned], [clocks[i] for i in breached], now)
    return SweepResult(outcome.warned, outcome.breached, outcome.actions)


# --- running it every minute -------------------------------------------------------------


def sweep_job() -> None:
    """The rq job: sweep, then book the next minute's run."""
    try:
        result = sweep()
        if result.warned or result.breached:
            log.info("sla sweep: %s", result)
    finally:
        schedule_next()


def schedule_next(now: datetime | None = None) -> str | None:
    """Book the sweep for the start of the next minute (once, however many book it)."""
    return jobs.book_next_minute(sweep_job, SWEEP_JOB_PREFIX, now)
