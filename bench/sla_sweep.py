"""Benchmark of the SLA sweep on PostgreSQL: its cost must follow the clocks that are
due, not the clocks that exist.

In one run, against one server:

1. A tenant with a manager (who gets the breach notifications) is made through the app.
2. Running clocks are COPYed in until there are 10,000, then 1,000,000; their warning
   and due times lie days to months ahead, as on a live desk.
3. At each size, for ``--rounds`` rounds: 100 more clocks whose due time has just
   passed are added, the table is analysed, the sweep's finding query is run under
   ``EXPLAIN (ANALYZE, BUFFERS)``, then ``crm.sla.sweep.sweep()`` is run and timed two
   ways: wall time, and database time (the sum of every statement's execution, from
   SQLAlchemy's cursor events). Each due clock is breached: the sweep records the
   breach, writes the audit event, the in-app notification and the outbox email.
The 10,000-clock sweep is the baseline; the 1,000,000-clock sweep is reported as a
ratio against it (goal: about 1). Goal for the absolute figure: a sweep of 100 due
clocks among 1,000,000 takes under 50 ms of database time.

    .venv/bin/python bench/sla_sweep.py --database-url postgresql://postgres@127.0.0.1:5432/ledgerdesk_bench_sla
        [--rounds 3] [--explain-out PATH]
"""

import argparse
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import flask_migrate
import psycopg
from seed import reset_database  # bench/seed.py: drops only a 'bench' or 'perf' database
from sqlalchemy import event, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import crm
from crm.audit.service import Actor
from crm.auth import service as auth
from crm.extensions import db
from crm.provisioning import service as provisioning
from crm.sla import sweep
from tenants import tenant_context

DUE_PER_ROUND = 100
COLUMNS = (
    "tenant_id", "subject_type", "subject_id", "metric", "state", "unit", "target", "warn_percent",
    "alerts", "started_at", "due_at", "warn_at", "paused_seconds", "pauses", "check_at",
)  # fmt: skip


def copy_clocks(conninfo: str, tenant_id: int, count: int, *, now: datetime, due: bool, first: int) -> None:
    """``count`` running clocks: due a moment ago (``due``), or days to months ahead."""
    rng = random.Random(first)
    with psycopg.connect(conninfo) as connection, connection.cursor() as cursor:
        with cursor.copy(f"COPY clocks ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for serial in range(first, first + count):
                started = now - timedelta(minutes=rng.randint(1, 600))
                due_at = (
                    now - timedelta(seconds=rng.randint(1, 50))
                    if due
                    else now + timedelta(minutes=rng.randint(60, 90 * 24 * 60))
                )
                warn_at = started + (due_at - started) * 0.8
                check_at = due_at if due or warn_at <= now else warn_at
                copy.write_row(
                    (tenant_id, "ticket", serial, "resolution", "running", "calendar_days", 15, 80,
                     True, started, due_at, warn_at, 0, "[]", check_at)
                )  # fmt: skip
        connection.commit()


class DatabaseTimer:
    """Sums the execution time of every statement the app's engine runs."""

    def __init__(self, engine) -> None:
        self.seconds = 0.0
        self.statements = 0
        self.by_statement: dict[str, float] = {}
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn, cursor, statement, parameters, context, executemany) -> None:
        conn.info["bench_started"] = time.perf_counter()

    def _after(self, conn, cursor, statement, parameters, context, executemany) -> None:
        spent = time.perf_counter() - conn.info.pop("bench_started")
        self.seconds += spent
        self.statements += 1
        key = " ".join(statement.split())[:90]
        self.by_statement[key] = self.by_statement.get(key, 0.0) + spent

    def reset(self) -> None:
        self.seconds, self.statements, self.by_statement = 0.0, 0, {}


def finding_query_plan(app) -> str:
    query = sweep.due_clocks(datetime.now(UTC))
    with app.app_context():
        compiled = query.compile(db.engine, compile_kwargs={"literal_binds": True})
        rows = db.session.execute(
            text(f"EXPLAIN (ANALYZE, BUFFERS) {compiled}"), execution_options={"tenant_guard": False}
        )
        plan = "\n".join(row[0] for row in rows)
        db.session.rollback()
    return plan


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--explain-out", type=Path)
    args = parser.parse_args()
    conninfo = args.database_url.replace("postgresql+psycopg://", "postgresql://")
    reset_database(conninfo)
    app = crm.create_app(
        {"SQLALCHEMY_DATABASE_URI": args.database_url, "PASSWORD_HASH_METHOD": "scrypt:1024:8:1"}
    )
    with app.app_context():
        flask_migrate.upgrade()
        tenant = provisioning.create_tenant(slug="bench-sla", name="Bench SLA", actor=Actor.operator("bench"))
        with tenant_context(tenant):
            auth.create_user(
                email="manager@bench.test",
                role="manager",
                password="bench password",
                actor=Actor.operator("bench"),
            )
        db.session.commit()
        tenant_id = tenant.id
        timer = DatabaseTimer(db.engine)

    results, plans, existing, serial = {}, {}, 0, 1
    for size in (int(value) for value in args.sizes.split(",")):
        now = datetime.now(UTC)
        copy_clocks(conninfo, tenant_id, size - existing, now=now, due=False, first=serial)
        serial += size - existing
        existing = size
        rounds = []
        for _round in range(args.rounds):
            copy_clocks(conninfo, tenant_id, DUE_PER_ROUND, now=datetime.now(UTC), due=True, first=serial)
            serial += DUE_PER_ROUND
            with psycopg.connect(conninfo, autocommit=True) as connection:
                connection.execute("VACUUM ANALYZE clocks")
            plans[size] = finding_query_plan(app)
            with app.app_context():
                timer.reset()
                started = time.perf_counter()
                result = sweep.sweep()
                wall = time.perf_counter() - started
            assert result.breached == DUE_PER_ROUND, result
            rounds.append((wall, timer.seconds, timer.statements))
            slowest = sorted(timer.by_statement.items(), key=lambda item: -item[1])[:4]
            print(
                f"  slowest statements at {size:,}: "
                + "; ".join(f"{ms * 1000:.1f} ms {sql}" for sql, ms in slowest)
            )
        results[size] = rounds
        print(
            f"{size:>9,} clocks: "
            + ", ".join(f"wall {w * 1000:.0f} ms / db {d * 1000:.0f} ms" for w, d, _ in rounds)
        )

    sizes = sorted(results)
    base = statistics.median(d for _, d, _ in results[sizes[0]])
    print(
        "\n| running clocks | due | sweep wall (median) | sweep DB time (median) | statements "
        "| finding query | DB time vs 10k |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for size in sizes:
        walls = [w for w, _, _ in results[size]]
        dbs = [d for _, d, _ in results[size]]
        statements = results[size][0][2]
        finding = (
            next(line for line in plans[size].splitlines() if "Execution Time" in line).split(":")[1].strip()
        )
        print(
            f"| {size:,} | {DUE_PER_ROUND} | {statistics.median(walls) * 1000:.0f} ms | "
            f"{statistics.median(dbs) * 1000:.1f} ms | {statements} | {finding} | "
            f"{statistics.median(dbs) / base:.2f} |"
        )
    if args.explain_out:
        args.explain_out.write_text(
            "\n\n".join(f"-- {size:,} running clocks\n{plans[size]}" for size in sizes) + "\n"
        )
    print(f"\nplan at {sizes[-1]:,} clocks:\n{plans[sizes[-1]]}")


if __name__ == "__main__":
    main()
