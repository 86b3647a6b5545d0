"""Benchmark of the audit chain on PostgreSQL: append throughput and verification speed.

In one run, against one server, it measures:

1. Append throughput. 1, 4 and 8 writer threads, each with its own app context (so its
   own session and connection), append to the SAME tenant's chain; a transaction is one
   ``crm.audit.service.record()`` then ``db.session.commit()`` inside ``tenant_context``.
   The baseline is the same number of threads running plain single-row INSERT + COMMIT
   transactions into ``bench_plain``, a table of similar width, through SQLAlchemy Core
   on the same engine. Audit and plain slices alternate (AB, BA, AB, …) so that load
   from other users of a shared machine hits both alike. As a diagnostic it also times
   how long each append holds the tenant's chain-head row lock.
   Goal: with 8 writers, appends reach at least half the plain-INSERT rate.
2. Verification. A chain of ``--events`` events is bulk-built (hashes computed with
   ``crm.audit.chain``, rows COPYed into ``audit_events``, the head set), then
   ``verify_chain()`` is timed in a fresh process, whose peak RSS growth during the
   verification is also measured (and compared with verifying a chain of a few thousand
   events). Baselines: ``count(*)``, and a streaming fetch of the same columns with no
   hashing (through SQLAlchemy as verify_chain does it, and through bare psycopg).
   Goal: >= 50,000 events/s in constant memory.

The machines this runs on are shared and noisy, so rates are also reported as ratios
against their in-run baselines. The bench database is dropped and recreated (its name
must contain "bench") and its schema built by the app's Alembic migrations.

    .venv/bin/python bench/audit.py [--database-url URL] [--events N] [--seconds S]
        [--writers 1,4,8] [--rounds R] [--json PATH]
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
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing import get_context

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
    event,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.engine import make_url

import crm
from crm.audit import service as audit_service
from crm.audit.chain import event_body, event_hash
from crm.audit.models import AuditEvent, AuditHead
from crm.audit.service import VERIFY_COLUMNS, Actor, record, verify_chain
from crm.columns import utcnow
from crm.extensions import db
from crm.provisioning.service import create_tenant
from tenants import CurrentTenant, Tenant, tenant_context

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/ledgerdesk_bench"
APPEND_GOAL_RATIO = 0.5
APPEND_GOAL_WRITERS = 8
VERIFY_GOAL_RATE = 50_000
MIB = 2**20

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

COPY_COLUMNS = tuple(column.key for column in VERIFY_COLUMNS)
ACTIONS = ("ticket.created", "ticket.assigned", "refund.requested", "refund.approved", "ticket.closed")
ACTORS = (
    Actor("user", "17", "张伟 agent@demo.test", "203.0.113.7"),
    Actor("user", "23", "supervisor@demo.test", "198.51.100.23"),
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


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


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


def make_app(url: str, chaining: str = "inline") -> Flask:
    return crm.create_app(
        {
            "SQLALCHEMY_DATABASE_URI": url,
            "PASSWORD_HASH_METHOD": "scrypt:1024:8:1",
            "AUDIT_CHAINING": chaining,
        }
    )


def build_app(url: str, chaining: str) -> Flask:
    """The app on the bench database, its schema built by the Alembic migrations."""
    app = make_app(url, chaining)
    with app.app_context():
        flask_migrate.upgrade()
        plain_metadata.create_all(db.engine)
        HEAD_LOCK.attach(db.engine)
    return app


def new_tenant(app: Flask, slug: str) -> CurrentTenant:
    with app.app_context():
        tenant = create_tenant(slug=slug, name=f"Bench {slug}", actor=Actor.operator("bench"))
        db.session.commit()
        return CurrentTenant.of(tenant)


def server_info(app: Flask) -> dict:
    settings = ("synchronous_commit", "fsync", "wal_sync_method", "commit_delay", "shared_buffers")
    with app.app_context():
        version = db.session.scalar(text("SHOW server_version"))
        values = {name: db.session.scalar(text(f"SHOW {name}")) for name in settings}
    return {"server_version": version, **values}


# --- phase 1: concurrent writers ----------------------------------------------------


class HeadLockClock:
    """Diagnostic: for an append whose commit also chained the waiting events, the time
    from the chaining's ``UPDATE audit_heads`` coming back to the commit coming back —
    the tail of the turn that holds the tenant's chain lock. None when the append's
    events were chained by another writer's turn (or if the app's SQL changes)."""

    STATEMENT = "UPDATE audit_heads SET seq"

    def __init__(self) -> None:
        self._local = threading.local()

    def attach(self, engine) -> None:
        event.listen(engine, "after_cursor_execute", self._stamp)

    def _stamp(self, connection, cursor, statement, parameters, context, executemany) -> None:
        if statement.startswith(self.STATEMENT):
            self._local.taken = time.perf_counter()

    def held(self) -> float | None:
        taken, self._local.taken = getattr(self._local, "taken", None), None
        return None if taken is None else time.perf_counter() - taken


HEAD_LOCK = HeadLockClock()

# A transaction takes (writer, i) and may return how long it held the head lock.
Transaction = Callable[[int, int], float | None]


@dataclass
class Slice:
    """What one timed window of one kind of writer measured."""

    seconds: float
    latencies: list[float]
    held: list[float]


def run_slice(app: Flask, writers: int, seconds: float, warmup: float, transaction: Transaction) -> Slice:
    """Run ``transaction`` in a loop on ``writers`` threads; keep those that complete in
    a ``seconds``-long window opening ``warmup`` seconds after all threads connected."""
    window: dict[str, float] = {}

    def open_window() -> None:
        window["start"] = time.perf_counter() + warmup
        window["end"] = window["start"] + seconds

    barrier = threading.Barrier(writers, action=open_window)
    latencies: list[list[float]] = [[] for _ in range(writers)]
    held: list[list[float]] = [[] for _ in range(writers)]
    errors: list[BaseException] = []

    def work(writer: int) -> None:
        try:
            with app.app_context():
                transaction(writer, -1)  # connect before the clock starts
                barrier.wait()
                start, end, i = window["start"], window["end"], 0
                while True:
                    began = time.perf_counter()
                    lock_held = transaction(writer, i)
                    done = time.perf_counter()
                    if done >= end:
                        return
                    if done >= start:
                        latencies[writer].append(done - began)
                        if lock_held is not None:
                            held[writer].append(lock_held)
                    i += 1
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=work, args=(k,)) for k in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError("a writer failed") from errors[0]
    return Slice(seconds, [x for w in latencies for x in w], [x for w in held for x in w])


def audit_transaction(tenant: CurrentTenant) -> Transaction:
    def transaction(writer: int, i: int) -> float | None:
        n = writer * 10_000_000 + i + 1
        with tenant_context(tenant):
            record(ACTIONS[n % len(ACTIONS)], "ticket", n, actor=ACTORS[n % len(ACTORS)], data=payload(n))
            db.session.commit()
        return HEAD_LOCK.held()

    return transaction


def plain_transaction(tenant: CurrentTenant) -> Transaction:
    statement = insert(bench_plain)

    def transaction(writer: int, i: int) -> float | None:
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
        return None

    return transaction


def quantile_ms(values: list[float], q: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0] * 1e3
    return statistics.quantiles(values, n=100)[q - 1] * 1e3


def summarize(slices: list[Slice]) -> dict:
    seconds = sum(s.seconds for s in slices)
    latencies = [x for s in slices for x in s.latencies]
    held = [x for s in slices for x in s.held]
    return {
        "per_s": len(latencies) / seconds,
        "rounds_per_s": [len(s.latencies) / s.seconds for s in slices],
        "p50_ms": quantile_ms(latencies, 50),
        "p99_ms": quantile_ms(latencies, 99),
        "lock_held_p50_ms": quantile_ms(held, 50),
        "lock_busy": sum(held) / seconds if held else None,
    }


def measure_writers(app: Flask, tenant: CurrentTenant, args: argparse.Namespace) -> list[dict]:
    factories = {"audit": audit_transaction(tenant), "plain": plain_transaction(tenant)}
    rows = []
    for writers in args.writers:
        slices: dict[str, list[Slice]] = {"audit": [], "plain": []}
        log(f"{writers} writer(s): {args.rounds} rounds of audit and plain, {args.seconds:g} s each in all")
        for round_ in range(args.rounds):
            for kind in ("audit", "plain") if round_ % 2 == 0 else ("plain", "audit"):
                piece = run_slice(app, writers, args.seconds / args.rounds, args.warmup, factories[kind])
                slices[kind].append(piece)
        audit, plain = summarize(slices["audit"]), summarize(slices["plain"])
        rows.append(
            {
                "writers": writers,
                "audit": audit,
                "plain": plain,
                "audit_over_plain": audit["per_s"] / plain["per_s"],
            }
        )
        log(f"  audit {audit['per_s']:,.0f}/s, plain {plain['per_s']:,.0f}/s")
    return rows


# --- phase 2: verification ----------------------------------------------------------


def chain_rows(
    tenant_id: int, first_seq: int, prev_hash: str, count: int, serialize: Callable[[dict], str]
) -> Iterator[tuple]:
    """``count`` chained events after ``(first_seq - 1, prev_hash)``, as COPY rows, with
    ``data`` written by ``serialize``."""
    start = datetime.now(UTC)  # after the events the tenant was created with
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
            "chained_at": start + timedelta(microseconds=seq * 1_337 + 2_000),
        }
        prev_hash = event_hash(prev_hash, event_body(**row))
        row["data"] = serialize(data)
        row["hash"] = prev_hash
        yield tuple(row[key] for key in COPY_COLUMNS)


def build_chain(app: Flask, tenant: CurrentTenant, events: int) -> float:
    """Extend the tenant's chain (started by ``create_tenant``) to ``events`` events by
    COPY, move its head, then VACUUM ANALYZE; returns the seconds it took."""
    began = time.perf_counter()
    with app.app_context():
        with tenant_context(tenant):
            head = db.session.execute(select(AuditHead.seq, AuditHead.hash)).one()
        db.session.rollback()
        last = (head.seq, head.hash)
        # ``data`` stored exactly as the app's engine would write it.
        serialize = getattr(db.engine.dialect, "_json_serializer", None) or json.dumps
        raw = db.engine.raw_connection()
        try:
            with raw.driver_connection.cursor() as cursor:
                columns = ", ".join(COPY_COLUMNS)
                with cursor.copy(f"COPY audit_events ({columns}) FROM STDIN") as copy:
                    rows = chain_rows(tenant.id, head.seq + 1, head.hash, events - head.seq, serialize)
                    for row in rows:
                        copy.write_row(row)
                        last = (row[1], row[-1])
                cursor.execute(
                    "UPDATE audit_heads SET seq = %s, hash = %s WHERE tenant_id = %s", (*last, tenant.id)
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

    def __init__(self, interval: float = 0.005) -> None:
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


def verify_in_fresh_process(url: str, slug: str) -> dict:
    """Run verify_chain for a tenant in this (fresh) process, timing it and sampling
    RSS, so the memory measured is verification's alone."""
    app = make_app(url)
    with app.app_context():
        tenant = CurrentTenant.of(db.session.scalars(select(Tenant).where(Tenant.slug == slug)).one())
        db.session.rollback()
        with tenant_context(tenant):
            db.session.execute(select(AuditHead.seq)).all()  # connect, warm the caches
            with PeakRss() as rss:
                began = time.perf_counter()
                report = verify_chain()
                seconds = time.perf_counter() - began
    return {
        "ok": report.ok,
        "count": report.count,
        "problem": report.problem,
        "seconds": seconds,
        "rss_growth_mib": rss.growth / MIB,
    }


def verify_elsewhere(url: str, slug: str, expected: int) -> dict:
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        result = pool.submit(verify_in_fresh_process, url, slug).result()
    if not result["ok"] or result["count"] != expected:
        raise RuntimeError(f"verify_chain rejected the chain of {slug}: {result}")
    return result


def time_count(app: Flask, tenant: CurrentTenant) -> tuple[int, float]:
    with app.app_context(), tenant_context(tenant):
        began = time.perf_counter()
        count, _ = db.session.execute(select(func.count(), func.max(AuditEvent.seq))).one()
        return count, time.perf_counter() - began


def time_fetch(app: Flask, tenant: CurrentTenant, batch: int) -> tuple[int, float]:
    """The same columns, order and streaming as verify_chain, with no hashing."""
    with app.app_context(), tenant_context(tenant):
        began = time.perf_counter()
        result = db.session.connection().execute(
            select(*VERIFY_COLUMNS)
            .where(AuditEvent.tenant_id == tenant.id)
            .order_by(AuditEvent.seq)
            .execution_options(yield_per=batch)
        )
        count = sum(len(partition) for partition in result.partitions())
        return count, time.perf_counter() - began


def time_raw_fetch(app: Flask, tenant: CurrentTenant, batch: int) -> tuple[int, float]:
    """The same rows through a bare psycopg server-side cursor: the driver's floor."""
    with app.app_context():
        raw = db.engine.raw_connection()
        try:
            began, count = time.perf_counter(), 0
            with raw.driver_connection.cursor(name="bench_raw_fetch") as cursor:
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
    return count, seconds


def measure_verify(app: Flask, url: str, appender: CurrentTenant, args: argparse.Namespace) -> dict:
    audit_service.BACKGROUND.drain()  # with background chaining: what is still waiting
    with app.app_context(), tenant_context(appender):
        waiting = audit_service.waiting_count()
        if waiting:
            raise SystemExit(f"{waiting} events were never chained")
        small_events = db.session.scalar(select(AuditHead.seq))
    log(f"verifying the appenders' chain ({small_events:,} events; it must be one unforked chain)")
    small = verify_elsewhere(url, appender.slug, small_events)

    log(f"bulk-building a chain of {args.events:,} events")
    # Built behind the app's back, so its head must not be moved by a background chainer.
    verifier = new_tenant(make_app(url), "bench-verify")
    build_seconds = build_chain(app, verifier, args.events)
    log(f"  built in {build_seconds:.0f} s; timing the baselines and verify_chain()")
    timings = {
        "count": time_count(app, verifier),
        "raw_fetch": time_raw_fetch(app, verifier, args.batch),
        "fetch_before": time_fetch(app, verifier, args.batch),
    }
    big = verify_elsewhere(url, verifier.slug, args.events)
    timings["fetch_after"] = time_fetch(app, verifier, args.batch)
    for name, (count, _) in timings.items():
        if count != args.events:
            raise RuntimeError(f"{name} saw {count} events, not {args.events}")
    seconds = {name: timing[1] for name, timing in timings.items()}
    fetch = (seconds["fetch_before"] + seconds["fetch_after"]) / 2
    return {
        "events": args.events,
        "build_seconds": build_seconds,
        "seconds": {**seconds, "fetch_mean": fetch, "verify": big["seconds"]},
        "verify_per_s": args.events / big["seconds"],
        "fetch_per_s": args.events / fetch,
        "raw_fetch_per_s": args.events / seconds["raw_fetch"],
        "verify_over_fetch": big["seconds"] / fetch,
        "rss_growth_mib": big["rss_growth_mib"],
        "small_events": small_events,
        "small_rss_growth_mib": small["rss_growth_mib"],
    }


# --- report -------------------------------------------------------------------------


def _num(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def print_report(results: dict) -> None:
    print()
    print("Append throughput: one record() + commit per transaction, all writers on one tenant")
    header = (
        f"{'writers':>7}  {'audit ev/s':>10}  {'p50 ms':>7}  {'p99 ms':>7}  {'lock ms':>7}  {'busy':>5}"
        f"  {'plain rows/s':>12}  {'p50 ms':>7}  {'p99 ms':>7}  {'audit/plain':>11}"
    )
    print(header)
    print("-" * len(header))
    for row in results["writers"]:
        audit, plain = row["audit"], row["plain"]
        print(
            f"{row['writers']:>7}  {audit['per_s']:>10,.0f}  {_num(audit['p50_ms'], '.2f'):>7}"
            f"  {_num(audit['p99_ms'], '.2f'):>7}  {_num(audit['lock_held_p50_ms'], '.2f'):>7}"
            f"  {_num(audit['lock_busy'], '.0%'):>5}  {plain['per_s']:>12,.0f}"
            f"  {_num(plain['p50_ms'], '.2f'):>7}  {_num(plain['p99_ms'], '.2f'):>7}"
            f"  {row['audit_over_plain']:>11.2f}"
        )
    print(
        "  lock ms: median tail of a chaining turn (head update to commit), for appends that"
        "\n  chained; busy: share of the time such tails ran (well under 100%: turns overlap"
        "\n  with other writers' commits)"
    )
    verify = results["verify"]
    seconds = verify["seconds"]
    print()
    print(
        f"Verification of a chain of {verify['events']:,} events"
        f" (bulk-built in {verify['build_seconds']:.0f} s)"
    )
    header = f"{'':<52}  {'seconds':>8}  {'events/s':>10}  {'verify / this':>13}"
    print(header)
    print("-" * len(header))
    lines = (
        ("SELECT count(*), max(seq)", seconds["count"]),
        ("stream the same columns, bare psycopg, no hashing", seconds["raw_fetch"]),
        ("stream the same columns, SQLAlchemy, no hashing (*)", seconds["fetch_mean"]),
        ("verify_chain()", seconds["verify"]),
    )
    for name, took in lines:
        print(
            f"{name:<52}  {took:>8.2f}  {verify['events'] / took:>10,.0f}  {seconds['verify'] / took:>13.2f}"
        )
    print(
        f"  (*) mean of one run before and one after verify_chain "
        f"({seconds['fetch_before']:.2f} s, {seconds['fetch_after']:.2f} s)"
    )
    print(
        f"  peak RSS growth during verify_chain: {verify['rss_growth_mib']:.1f} MiB for"
        f" {verify['events']:,} events, {verify['small_rss_growth_mib']:.1f} MiB for"
        f" {verify['small_events']:,} events"
    )
    print()
    print("Goals")
    for goal in results["goals"]:
        print(f"  [{'MET' if goal['met'] else 'NOT MET'}] {goal['text']}")


def judge(results: dict) -> list[dict]:
    goals = []
    at_goal = [row for row in results["writers"] if row["writers"] == APPEND_GOAL_WRITERS]
    if at_goal:
        ratio = at_goal[0]["audit_over_plain"]
        goals.append(
            {
                "goal": "append",
                "text": f"{APPEND_GOAL_WRITERS} writers: appends >= {APPEND_GOAL_RATIO:.0%} of the"
                f" plain-INSERT rate (measured {ratio:.0%})",
                "met": ratio >= APPEND_GOAL_RATIO,
            }
        )
    verify = results["verify"]
    goals.append(
        {
            "goal": "verify",
            "text": f"verify_chain >= {VERIFY_GOAL_RATE:,} events/s in constant memory (measured"
            f" {verify['verify_per_s']:,.0f}/s, {verify['verify_over_fetch']:.2f}x the fetch alone;"
            f" RSS +{verify['rss_growth_mib']:.1f} MiB)",
            "met": verify["verify_per_s"] >= VERIFY_GOAL_RATE,
        }
    )
    return goals


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_URL, help="dropped and recreated (%(default)s)")
    parser.add_argument("--events", type=int, default=1_000_000, help="chain length to verify (%(default)s)")
    parser.add_argument(
        "--seconds", type=float, default=12.0, help="measured seconds per kind and writer count (%(default)s)"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating slices those are split into (%(default)s)"
    )
    parser.add_argument(
        "--warmup", type=float, default=0.5, help="unmeasured seconds per slice (%(default)s)"
    )
    parser.add_argument(
        "--chaining",
        choices=("inline", "background"),
        default="inline",
        help="AUDIT_CHAINING of the appending app (%(default)s)",
    )
    parser.add_argument("--writers", default="1,4,8", help="writer counts, comma-separated (%(default)s)")
    parser.add_argument("--batch", type=int, default=5000, help="rows per fetch when streaming (%(default)s)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    try:
        args.writers = [int(n) for n in args.writers.split(",") if n.strip()]
    except ValueError:
        parser.error("--writers takes comma-separated counts, e.g. 1,4,8")
    if not args.writers or min(args.writers) < 1:
        parser.error("--writers takes positive counts, e.g. 1,4,8")
    if args.events < 2 or args.rounds < 1 or args.seconds <= 0:
        parser.error("--events must be at least 2, --rounds at least 1, --seconds positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    log(f"recreating {make_url(args.database_url).database} and running the migrations")
    reset_database(args.database_url)
    app = build_app(args.database_url, args.chaining)
    results: dict = {
        "meta": {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_at_start": os.getloadavg(),
            "server": server_info(app),
            "args": {k: v for k, v in vars(args).items() if k not in ("json", "database_url")},
        }
    }
    appender = new_tenant(app, "bench-append")
    results["writers"] = measure_writers(app, appender, args)
    results["verify"] = measure_verify(app, args.database_url, appender, args)
    results["goals"] = judge(results)
    results["meta"]["load_average_at_end"] = os.getloadavg()
    results["meta"]["total_seconds"] = time.perf_counter() - started

    print_report(results)
    print(
        f"\ntotal {results['meta']['total_seconds']:.0f} s; load average at start/end"
        f" {results['meta']['load_average_at_start'][0]:.1f}/{results['meta']['load_average_at_end'][0]:.1f}"
        f" on {results['meta']['cpus']} CPUs"
    )
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=2)
            out.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
