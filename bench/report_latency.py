"""The reports at volume: a quarter's complaints return and SLA attainment for the big
tenant of a desk loaded by bench/seed.py (1,000,000 tickets, 100,000 in ``perf-00``),
timed as the pages compute them, against a baseline in the same run: the ticket queue's
first page.

    .venv/bin/python bench/seed.py --database-url $URL --tenants 10 --tickets 1000000 \\
        --big-tenant-tickets 100000
    .venv/bin/python bench/report_latency.py --database-url $URL [--runs 15]

bench/seed.py loads tickets without clocks; the first run here gives every ticket its
first-response and resolution clocks (and complaints a regulatory one) in SQL, from the
ticket's own times: met on time, met late, or breached and open, as the status says, on
the tenant's calendar. Like clocks met before revision 0027, they have no kept business
time to meet: the first run fills it in for perf-00 (``sla backfill-met-times``), timed.
The SLA report is timed both ways: counted one clock at a time (as before, and as SQLite
still does) and counted by the database.
"""

import argparse
import statistics
import time
from datetime import UTC, datetime

from sqlalchemy import select, text

import crm
from crm.extensions import db
from crm.provisioning.service import tenant_by_slug
from crm.reports import periods, service, sla
from crm.sla import clocks, versions
from crm.sla.models import ConfigKind
from crm.tickets import queue
from tenants import Tenant, tenant_context

# Clocks made from each ticket: (metric, hours allowed, which ticket time meets it).
CLOCKS_SQL = """
INSERT INTO clocks (tenant_id, subject_type, subject_id, metric, state, unit, target, warn_percent,
                    alerts, started_at, due_at, met_at, breached_at, paused_seconds, pauses, rule,
                    calendar_version_id)
SELECT t.tenant_id, 'ticket', t.id, m.metric,
       CASE WHEN t.status IN ('resolved', 'closed') OR (m.metric = 'first_response' AND t.status <> 'new')
            THEN 'met' WHEN t.status = 'withdrawn' THEN 'stopped' ELSE 'running' END,
       'business_minutes', m.minutes, 80, true, t.created_at,
       t.created_at + make_interval(mins => m.minutes * 3),
       CASE WHEN t.status IN ('resolved', 'closed') THEN COALESCE(t.resolved_at, t.updated_at)
            WHEN m.metric = 'first_response' AND t.status <> 'new' THEN t.updated_at END,
       CASE WHEN COALESCE(t.resolved_at, t.updated_at, now())
                 > t.created_at + make_interval(mins => m.minutes * 3)
            THEN t.created_at + make_interval(mins => m.minutes * 3) END,
       0, '[]'::json, m.rule,
       (SELECT cv.id FROM config_versions cv WHERE cv.tenant_id = t.tenant_id AND cv.kind = 'calendar'
        ORDER BY cv.version DESC LIMIT 1)
FROM tickets t
CROSS JOIN (VALUES ('first_response', 480, '1'), ('resolution', 2700, '1')) AS m(metric, minutes, rule)
"""


def timed(call, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
        db.session.rollback()
    return times


def summary(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    return statistics.median(ordered), ordered[max(0, int(len(ordered) * 0.95) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    app = crm.create_app({"SQLALCHEMY_DATABASE_URI": args.database_url, "REDIS_URL": None})
    with app.app_context():
        if not db.session.execute(
            text("SELECT EXISTS (SELECT 1 FROM clocks WHERE subject_type = 'ticket')")
        ).scalar():
            started = time.perf_counter()
            for tenant in db.session.scalars(select(Tenant)).all():
                with tenant_context(tenant):
                    versions.current(ConfigKind.CALENDAR)  # the clocks run on the tenant's calendar
            db.session.commit()
            db.session.execute(text(CLOCKS_SQL))
            db.session.execute(text("ANALYZE clocks"))
            db.session.commit()
            print(f"made the tickets' clocks in {time.perf_counter() - started:.0f} s")
        tenant = tenant_by_slug("perf-00")
        with tenant_context(tenant):
            # Clocks made in SQL have no kept business time to meet, like clocks met
            # before revision 0027: what `flask sla backfill-met-times` fills in.
            started = time.perf_counter()
            filled = clocks.backfill_met_business_seconds()
            db.session.commit()
            if filled:
                seconds = time.perf_counter() - started
                print(f"kept the business time to meet of {filled:,} clocks in {seconds:.0f} s")
        # The tables link each count to the queue: URLs are built as in a request.
        with app.test_request_context(f"/t/{tenant.slug}/reports"), tenant_context(tenant):
            today = periods.local_today(tenant.timezone, datetime.now(UTC))
            period = periods.preset("last_quarter", today, tenant.timezone)
            baseline = timed(lambda: queue.queue_page(queue.QueueQuery(), user_id=0, country="CN"), args.runs)
            now = datetime.now(UTC)
            cases = {
                "SLA attainment (by metric), counted one clock at a time (before)": lambda: service.sla_table(
                    sla.count(sla.facts_from_clocks(period), period, now=now), "metric", period
                ),
                "SLA attainment (by metric), counted by the database": lambda: service.sla_table(
                    service.sla_rows(period, now=now), "metric", period
                ),
                "SLA attainment by week, counted by the database": lambda: service.sla_table(
                    service.sla_rows(period, group_by="week", now=now), "week", period
                ),
                "complaints return, counts and tables": lambda: service.complaints_tables(
                    service.complaints_return(period)
                ),
            }
            base_median, base_p95 = summary(baseline)
            print(f"period {period.first_day} to {period.last_day}")
            print(f"baseline (queue, first page): median {base_median:.1f} ms, p95 {base_p95:.1f} ms")
            for label, call in cases.items():
                median, p95 = summary(timed(call, args.runs))
                ratio = p95 / base_median
                print(
                    f"{label}: median {median:.0f} ms, p95 {p95:.0f} ms, p95 / baseline median {ratio:.0f}x"
                )


if __name__ == "__main__":
    main()
