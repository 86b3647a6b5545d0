"""Benchmark of the audit chain on PostgreSQL.

In one run, against one server, it measures:

1. Append throughput. 1, 4 and 8 writer threads, each with its own app context (so
   its own session and connection), append to the SAME tenant's chain; a transaction
   is one ``crm.audit.service.record()`` followed by ``db.session.commit()`` inside
   ``tenant_context``. The baseline is the same number of threads running plain
   single-row ``INSERT`` + ``COMMIT`` transactions into a table of similar width
   (``bench_plain``) through SQLAlchemy Core on the same engine. Goal: with 8 writers,
   appends reach at least half the plain-INSERT rate.
2. Verification. A chain of ``--events`` events is bulk-built (hashes computed with
   ``crm.audit.chain``, rows COPYed in, the head set), then ``verify_chain()`` is
   timed, with the peak RSS growth while it runs. Baselines are ``count(*)`` and a
   streaming fetch of the same columns with no hashing (through SQLAlchemy, and
   through bare psycopg). Goal: >= 50,000 events/s in constant memory.

The machines this runs on are shared and noisy, so every rate is also reported as a
ratio against its in-run baseline. The bench database is dropped and recreated (its
schema built by the app's Alembic migrations); its name must contain "bench".

    .venv/bin/python bench/audit.py [--database-url URL] [--events N]
        [--seconds S] [--writers 1,4,8] [--json PATH]
"""

import argparse
import gc
import hashlib
import json
import os
import platform
import resource
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

import flask_migrate
from flask import Flask
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    MetaData,
    Table,
    Text,
    create_engine,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.engine import make_url

import crm
from crm.audit.chain import event_body, event_hash
from crm.audit.models import AuditEvent, AuditHead
from crm.audit.service import Actor, record, verify_chain
from crm.columns import utcnow
from crm.extensions import db
from crm.provisioning.service import create_tenant
from tenants import CurrentTenant, tenant_context

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/ledgerdesk_bench"
APPEND_GOAL_RATIO = 0.5
VERIFY_GOAL_RATE = 50_000
GOAL_WRITERS = 8

plain_metadata = MetaData()
bench_plain = Table(
    "bench_plain",
    plain_metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("tenant_id", BigInteger, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("action", Text, nullable=False),
    Column("data", JSON, nullable=False),
    Column("hash", Text, nullable=False),
)

# The columns verify_chain reads, in its order.
VERIFY_COLUMNS = (
    AuditEvent.tenant_id,
    AuditEvent.seq,
    AuditEvent.occurred_at,
    AuditEvent.actor_kind,
    AuditEvent.actor_id,
    AuditEvent.actor_label,
    AuditEvent.ip,
    AuditEvent.action,
    AuditEvent.subject_type,
    AuditEvent.subject_id,
    AuditEvent.data,
    AuditEvent.prev_hash,
    AuditEvent.hash,
)
COPY_COLUMNS = tuple(column.key for column in VERIFY_COLUMNS)
ACTIONS = ("ticket.created", "ticket.assigned", "refund.requested", "refund.approved", "ticket.closed")
ACTORS = (
    Actor("staff", "17", "张伟 (agent)", "203.0.113.7"),
    Actor("staff", "23", "Dana Li (supervisor)", "198.51.100.23"),
    Actor("customer", "90211", "customer #90211", "192.0.2.44"),
    Actor.system(),
)


def payload(n: int) -> dict:
    """A realistic event ``data``: ids, an amount in minor units, a digest; no floats."""
    return {
        "ticket": n,
        "amount_minor": 12_900 + n % 1000,
        "currency": "CNY",
        "status": ACTIONS[n % len(ACTIONS)].split(".")[1],
        "reason_digest": hashlib.sha256(n.to_bytes(8, "big")).hexdigest(),
    }


# --- set-up -------------------------------------------------------------------------


def reset_database(url: str) -> None:
    """Drop and recreate the bench database (refusing any name without "bench")."""
    target = make_url(url)
    name = target.database or ""
    if "bench" not in name:
        sys.exit(f"refusing to drop database {name!r}: its name must contain 'bench'")
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            quoted = admin.dialect.identifier_preparer.quote(name)
            connection.execute(text(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
            connection.execute(text(f"CREATE DATABASE {quoted}"))
    finally:
        admin.dispose()


def build_app(url: str) -> Flask:
    """The app on the bench database, its schema built by the Alembic migrations."""
    app = crm.create_app({"SQLALCHEMY_DATABASE_URI": url, "PASSWORD_HASH_METHOD": "scrypt:1024:8:1"})
    with app.app_context():
        flask_migrate.upgrade()
        plain_metadata.create_all(db.engine)
    return app


def new_tenant(app: Flask, slug: str) -> CurrentTenant:
    with app.app_context():
        tenant = create_tenant(slug=slug, name=f"Bench {slug}", actor=Actor.operator("bench"))
        db.session.commit()
        return CurrentTenant.of(tenant)


def server_info(app: Flask) -> dict:
    with app.app_context():
        row = db.session.execute(
            text(
                "SELECT version(), current_setting('synchronous_commit'), current_setting('fsync'),"
                " current_setting('shared_buffers'), current_setting('wal_sync_method')"
            )
        ).one()
    keys = ("version", "synchronous_commit", "fsync", "shared_buffers", "wal_sync_method")
    return dict(zip(keys, row, strict=True))


# --- phase 1: concurrent writers ----------------------------------------------------


@dataclass
class WriterResult:
    kind: str
    writers: int
    seconds: float
    transactions: int
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.transactions / self.seconds


def run_writers(
    app: Flask,
    kind: str,
    writers: int,
    seconds: float,
    warmup: float,
    transaction: Callable[[int, int], None],
) -> WriterResult:
    """Run ``transaction(writer, i)`` in a loop on ``writers`` threads; count those that
    complete inside a ``seconds``-long window opening ``warmup`` seconds after all
    threads are connected."""
    window: dict[str, float] = {}

    def open_window() -> None:
        window["start"] = time.perf_counter() + warmup
        window["end"] = window["start"] + seconds

    barrier = threading.Barrier(writers, action=open_window)
    latencies: list[list[float]] = [[] for _ in range(writers)]
    errors: list[BaseException] = []

    def work(writer: int) -> None:
        try:
            with app.app_context():
                transaction(writer, -1)  # connect before the clock starts
                barrier.wait()
                start, end, i = window["start"], window["end"], 0
                while True:
                    began = time.perf_counter()
                    transaction(writer, i)
                    done = time.perf_counter()
                    if done >= end:
                        return
                    if done >= start:
                        latencies[writer].append(done - began)
                    i += 1
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=work, args=(k,), name=f"{kind}-{k}") for k in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"{kind} writer failed") from errors[0]
    every = sorted(latency for per_writer in latencies for latency in per_writer)
    quantiles = statistics.quantiles(every, n=100) if len(every) > 1 else [every[0]] * 99
    return WriterResult(kind, writers, seconds, len(every), quantiles[49] * 1e3, quantiles[98] * 1e3)


def audit_transaction(tenant: CurrentTenant) -> Callable[[int, int], None]:
    def transaction(writer: int, i: int) -> None:
        n = writer * 10_000_000 + i + 1
        with tenant_context(tenant):
            record(
                ACTIONS[n % len(ACTIONS)],
                "ticket",
                n,
                actor=ACTORS[n % len(ACTORS)],
                data=payload(n),
            )
            db.session.commit()

    return transaction


def plain_transaction(tenant: CurrentTenant) -> Callable[[int, int], None]:
    statement = insert(bench_plain)

    def transaction(writer: int, i: int) -> None:
        n = writer * 10_000_000 + i + 1
        row = {
            "tenant_id": tenant.id,
            "occurred_at": utcnow(),
            "action": ACTIONS[n % len(ACTIONS)],
            "data": payload(n),
            "hash": hashlib.sha256(n.to_bytes(8, "big")).hexdigest(),
        }
        with db.engine.begin() as connection:
            connection.execute(statement, row)

    return transaction


# --- phase 2: verification ----------------------------------------------------------


def chain_rows(tenant_id: int, first_seq: int, prev_hash: str, count: int) -> Iterator[tuple]:
    """``count`` chained events after ``(first_seq - 1, prev_hash)``, as COPY rows."""
    start = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    for seq in range(first_seq, first_seq + count):
        actor = ACTORS[seq % len(ACTORS)]
        data = payload(seq)
        row = {
            "tenant_id": tenant_id,
            "seq": seq,
            "occurred_at": start + timedelta(microseconds=seq * 1_337),
            "actor_kind": actor.kind,
            "actor_id": actor.id,
            "actor_label": actor.label,
            "ip": actor.ip,
            "action": ACTIONS[seq % len(ACTIONS)],
            "subject_type": "ticket",
            "subject_id": str(seq // 7),
            "data": data,
            "prev_hash": prev_hash,
        }
        prev_hash = event_hash(prev_hash, event_body(**row))
        row["data"] = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        row["hash"] = prev_hash
        yield tuple(row[key] for key in COPY_COLUMNS)


def build_chain(app: Flask, tenant: CurrentTenant, events: int) -> float:
    """Extend the tenant's chain (started by ``create_tenant``) to ``events`` events by
    COPY, set its head, and vacuum; returns the seconds it took."""
    began = time.perf_counter()
    with app.app_context():
        with tenant_context(tenant):
            head = db.session.execute(select(AuditHead.seq, AuditHead.hash)).one()
        db.session.rollback()
        rows = chain_rows(tenant.id, head.seq + 1, head.hash, events - head.seq)
        raw = db.engine.raw_connection()
        try:
            with raw.driver_connection.cursor() as cursor:
                columns = ", ".join(COPY_COLUMNS)
                last = (head.seq, head.hash)
                with cursor.copy(f"COPY audit_events ({columns}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                        last = (row[1], row[-1])
                cursor.execute(
                    "UPDATE audit_heads SET seq = %s, hash = %s WHERE tenant_id = %s",
                    (*last, tenant.id),
                )
            raw.commit()
        finally:
            raw.close()
        with db.engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").execute(
                text("VACUUM (ANALYZE) audit_events")
            )
    return time.perf_counter() - began


def rss_bytes() -> int:
    """The current resident set size (Linux), else the peak so far."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        scale = 1 if sys.platform == "darwin" else 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


class PeakRss:
    """Samples RSS on a thread while the block runs; ``growth`` is peak minus start."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.start = self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_bytes())

    def __enter__(self) -> "PeakRss":
        gc.collect()
        self.start = self.peak = rss_bytes()
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())

    @property
    def growth(self) -> int:
        return self.peak - self.start


@dataclass
class Timed:
    name: str
    rows: int
    seconds: float
    rss_growth_bytes: int | None = None

    @property
    def rate(self) -> float:
        return self.rows / self.seconds


def time_count(app: Flask, tenant: CurrentTenant) -> Timed:
    with app.app_context(), tenant_context(tenant):
        began = time.perf_counter()
        count, _ = db.session.execute(select(func.count(), func.max(AuditEvent.seq))).one()
        return Timed("SELECT count(*), max(seq)", count, time.perf_counter() - began)


def time_fetch(app: Flask, tenant: CurrentTenant, batch: int) -> Timed:
    """The same columns, order and streaming as verify_chain, with no hashing."""
    with app.app_context(), tenant_context(tenant):
        began = time.perf_counter()
        result = db.session.execute(
            select(*VERIFY_COLUMNS).order_by(AuditEvent.seq).execution_options(yield_per=batch)
        )
        count = sum(len(partition) for partition in result.partitions())
        return Timed("stream same columns (SQLAlchemy), no hashing", count, time.perf_counter() - began)


def time_raw_fetch(app: Flask, tenant: CurrentTenant, batch: int) -> Timed:
    """The same rows through a bare psycopg server-side cursor: the driver's floor."""
    with app.app_context():
        raw = db.engine.raw_connection()
        try:
            began = time.perf_counter()
            count = 0
            with raw.driver_connection.cursor(name="bench_raw_fetch") as cursor:
                cursor.itersize = batch
                cursor.execute(
                    f"SELECT {', '.join(COPY_COLUMNS)} FROM audit_events WHERE tenant_id = %s ORDER BY seq",
                    (tenant.id,),
                )
                while rows := cursor.fetchmany(batch):
                    count += len(rows)
            seconds = time.perf_counter() - began
            raw.rollback()
        finally:
            raw.close()
    return Timed("stream same columns (bare psycopg), no hashing", count, seconds)


def time_verify(app: Flask, tenant: CurrentTenant, expected: int) -> Timed:
    with app.app_context(), tenant_context(tenant), PeakRss() as rss:
        began = time.perf_counter()
        report = verify_chain()
        seconds = time.perf_counter() - began
    if not report.ok or report.count != expected:
        raise RuntimeError(f"verify_chain rejected the chain: {report}")
    return Timed("verify_chain()", report.count, seconds, rss.growth)


# --- report -------------------------------------------------------------------------


@dataclass
class Results:
    meta: dict = field(default_factory=dict)
    writers: list[dict] = field(default_factory=list)
    verify: dict = field(default_factory=dict)
    goals: dict = field(default_factory=dict)


def writer_rows(audit: list[WriterResult], plain: list[WriterResult]) -> list[dict]:
    return [
        {
            "writers": a.writers,
            "audit_events_per_s": round(a.rate, 1),
            "audit_p50_ms": round(a.p50_ms, 3),
            "audit_p99_ms": round(a.p99_ms, 3),
            "plain_rows_per_s": round(p.rate, 1),
            "plain_p50_ms": round(p.p50_ms, 3),
            "plain_p99_ms": round(p.p99_ms, 3),
            "audit_over_plain": round(a.rate / p.rate, 3),
        }
        for a, p in zip(audit, plain, strict=True)
    ]


def print_table(results: Results) -> None:
    print()
    print("Append throughput: one record() + commit per transaction, all writers on one tenant")
    header = (
        f"{'writers':>7}  {'audit ev/s':>10}  {'p50 ms':>7}  {'p99 ms':>7}"
        f"  {'plain rows/s':>12}  {'p50 ms':>7}  {'p99 ms':>7}  {'audit/plain':>11}"
    )
    print(header)
    print("-" * len(header))
    for row in results.writers:
        print(
            f"{row['writers']:>7}  {row['audit_events_per_s']:>10,.0f}  {row['audit_p50_ms']:>7.2f}"
            f"  {row['audit_p99_ms']:>7.2f}  {row['plain_rows_per_s']:>12,.0f}"
            f"  {row['plain_p50_ms']:>7.2f}  {row['plain_p99_ms']:>7.2f}  {row['audit_over_plain']:>11.2f}"
        )
    verify = results.verify
    print()
    print(
        f"Verification: chain of {verify['events']:,} events (bulk-built in {verify['build_seconds']:.1f} s)"
    )
    header = f"{'what':<48}  {'seconds':>8}  {'rows/s':>10}  {'verify is x slower':>18}"
    print(header)
    print("-" * len(header))
    verify_seconds = verify["verify_chain"]["seconds"]
    for item in verify["baselines"] + [verify["verify_chain"]]:
        print(
            f"{item['name']:<48}  {item['seconds']:>8.2f}  {item['rows_per_s']:>10,.0f}"
            f"  {verify_seconds / item['seconds']:>18.2f}"
        )
    print(
        f"peak RSS growth during verify_chain: {verify['rss_growth_mib']:.1f} MiB for"
        f" {verify['events']:,} events; {verify['small_rss_growth_mib']:.1f} MiB for"
        f" {verify['small_events']:,} events"
    )
    print()
    print("Goals")
    for goal in results.goals.values():
        print(f"  [{'MET' if goal['met'] else 'NOT MET'}] {goal['text']}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url", default=DEFAULT_URL, help="dropped and recreated (default: %(default)s)"
    )
    parser.add_argument("--events", type=int, default=1_000_000, help="chain length to verify (%(default)s)")
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="measured seconds per writer phase (%(default)s)"
    )
    parser.add_argument(
        "--warmup", type=float, default=1.0, help="unmeasured seconds per writer phase (%(default)s)"
    )
    parser.add_argument("--writers", default="1,4,8", help="writer counts, comma-separated (%(default)s)")
    parser.add_argument("--batch", type=int, default=5000, help="rows per fetch when streaming (%(default)s)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    args.writers = [int(n) for n in args.writers.split(",") if n.strip()]
    if not args.writers or min(args.writers) < 1:
        parser.error("--writers needs positive counts, e.g. 1,4,8")
    if args.events < 2:
        parser.error("--events must be at least 2")
    return args


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    log(f"recreating {make_url(args.database_url).database} and running the migrations")
    reset_database(args.database_url)
    app = build_app(args.database_url)
    results = Results(
        meta={
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "server": server_info(app),
            "args": {k: v for k, v in vars(args).items() if k != "json"},
        }
    )

    appender = new_tenant(app, "bench-append")
    audit: list[WriterResult] = []
    plain: list[WriterResult] = []
    for writers in args.writers:
        for kind, factory, into in (
            ("audit", audit_transaction, audit),
            ("plain", plain_transaction, plain),
        ):
            log(f"{kind}: {writers} writer(s) for {args.seconds:g} s")
            into.append(run_writers(app, kind, writers, args.seconds, args.warmup, factory(appender)))
            log(f"  {into[-1].rate:,.0f} transactions/s")
    results.writers = writer_rows(audit, plain)

    log("verifying the appenders' chain (it must have stayed one unforked chain)")
    with app.app_context(), tenant_context(appender):
        small_events = db.session.scalar(select(AuditHead.seq))
    small = time_verify(app, appender, small_events)

    log(f"bulk-building a chain of {args.events:,} events")
    verifier = new_tenant(app, "bench-verify")
    build_seconds = build_chain(app, verifier, args.events)
    log(f"  built in {build_seconds:.1f} s; timing baselines and verify_chain()")
    baselines = [
        time_count(app, verifier),
        time_raw_fetch(app, verifier, args.batch),
        time_fetch(app, verifier, args.batch),
    ]
    verified = time_verify(app, verifier, args.events)
    fetch = baselines[-1]
    results.verify = {
        "events": args.events,
        "build_seconds": round(build_seconds, 2),
        "baselines": [{**asdict(b), "rows_per_s": round(b.rate, 1)} for b in baselines],
        "verify_chain": {**asdict(verified), "rows_per_s": round(verified.rate, 1)},
        "verify_over_fetch_time": round(verified.seconds / fetch.seconds, 3),
        "rss_growth_mib": round(verified.rss_growth_bytes / 2**20, 2),
        "small_events": small.rows,
        "small_rss_growth_mib": round(small.rss_growth_bytes / 2**20, 2),
    }

    at_goal = [row for row in results.writers if row["writers"] == GOAL_WRITERS]
    if at_goal:
        ratio = at_goal[0]["audit_over_plain"]
        results.goals["append"] = {
            "text": f"{GOAL_WRITERS} writers: appends >= {APPEND_GOAL_RATIO:.0%} of plain INSERTs"
            f" (measured {ratio:.0%})",
            "met": ratio >= APPEND_GOAL_RATIO,
        }
    results.goals["verify"] = {
        "text": f"verify_chain >= {VERIFY_GOAL_RATE:,} events/s (measured {verified.rate:,.0f};"
        f" peak RSS growth {results.verify['rss_growth_mib']:.1f} MiB)",
        "met": verified.rate >= VERIFY_GOAL_RATE,
    }
    results.meta["total_seconds"] = round(time.perf_counter() - started, 1)

    print_table(results)
    print(f"\ntotal {results.meta['total_seconds']:.0f} s")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(asdict(results), out, indent=2, default=str)
            out.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
