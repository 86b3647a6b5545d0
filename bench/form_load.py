"""Load test of the hosted refund form (POST /t/<slug>/refund) against a bare Flask
endpoint doing one INSERT on the same stack, measured in the same run.

It starts two gunicorns with --workers sync workers each (default 2) on free loopback
ports: the real app
(``wsgi:app``; DATABASE_URL, REDIS_URL, a fixed SECRET_KEY, CRM_ENV unset) and
``bench/bare_app.py``. For the real form it first GETs the form N times, each with a
fresh cookie jar, and keeps every (session cookie, CSRF token, submission token), so
each POST is a new customer's first submit and makes one ticket. wrk replays them
(``bench/wrk/form_post.lua``), each once, urlencoded (no files), with realistic values,
each from its own address (X-Forwarded-For, with TRUSTED_PROXIES=1 as behind a load
balancer): the form's per-address limit on attempts (60 an hour) is fixed, not the
tenant's to raise, and thousands of customers do not share one address.

Runs, in this order, so the baseline brackets the form (medians are reported):
  bare max (-c16) · [form max (-c16) · form at half that rate · bare max] × --rounds ·
  form at -c1 and -c2 (wrk, closed loop). The half-rate run is open loop: this script
  sends requests at Poisson-distributed instants and times each from the instant it was
  due (wrk2 is not packaged, and with 2 sync workers even -c1 runs well above half the
  max rate).
Each run also reports the server's CPU per request (gunicorn workers and their PostgreSQL
backends, from /proc): on a shared machine the rates move with the neighbours' load, the
CPU cost per request much less.
After each form run it checks that the tickets created equal the requests sent (the
302s, plus those wrk left in flight when it stopped, which the server completes), that no
submission token was used twice or left without its ticket, and that nothing answered 5xx.

The form's tenant (``perf-form``, created through ``create_tenant`` if missing) gets
its ``form_submissions_per_hour`` raised by SQL so the per-IP limit does not cut in.

    .venv/bin/python bench/form_load.py \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/ledgerdesk_perf \\
        [--redis-url redis://127.0.0.1:6379/5] [--seconds 20] [--json out.json]

``--app-root DIR`` serves the form from another checkout (a ``git worktree`` of the
commit before a change), so a before and an after run use the same bench.
"""

import argparse
import http.client
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urlencode

import psycopg
from sqlalchemy.engine import make_url

import crm
from crm.audit.service import Actor
from crm.extensions import db
from crm.provisioning.service import create_tenant, tenant_by_slug

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bare_app  # a sibling script, not a package
from seed import (
    DESCRIPTIONS_EN,
    DESCRIPTIONS_ZH,
    EMAIL_DOMAINS,
    GIVEN_NAMES,
    MOBILE_PREFIXES,
    REASONS,
    SURNAMES,
)

ROOT = Path(__file__).resolve().parent.parent
LUA_SCRIPT = ROOT / "bench" / "wrk" / "form_post.lua"
FORM_SLUG = "perf-form"
SECRET_KEY = "perf-bench-secret-key-not-for-production"
GOAL_RATIO = 0.2  # issue 11, section 7 (issue 3 asked 0.4)
GOAL_P99_MS = 100.0
CSRF_INPUT = re.compile(r'<input[^>]*\bname="csrf_token"[^>]*>')
TOKEN_INPUT = re.compile(r'<input[^>]*\bname="submission_token"[^>]*>')
VALUE = re.compile(r'\bvalue="([^"]*)"')


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()


@dataclass
class WrkRun:
    label: str
    connections: int
    seconds: float
    requests: int
    rate: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    timeouts: int
    reused: int
    sent: int
    statuses: dict[int, int] = field(default_factory=dict)
    tickets_created: int | None = None
    check: str = ""
    # Diagnostic: of the samples in which a server backend was inside a transaction, the
    # share it spent waiting for a lock, and on what statement.
    lock_wait_share: float | None = None
    lock_waits: dict[str, int] = field(default_factory=dict)
    # CPU the server side spent per answered request: the gunicorn workers, and the
    # PostgreSQL backends of this database. Unlike rates, it barely moves with the load
    # other programs put on the machine.
    app_cpu_ms: float | None = None
    db_cpu_ms: float | None = None
    offered_rate: float | None = None  # the open-loop run's target rate


TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """User plus system CPU seconds of a process (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


class ServerCpu:
    """CPU seconds of a gunicorn's workers and of the database's client backends."""

    def __init__(self, server: "Server", conninfo: str) -> None:
        self.server, self.conninfo = server, conninfo

    def workers(self) -> list[int]:
        master = str(self.server.process.pid)
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                if stat.read_text().rsplit(")", 1)[1].split()[1] == master:
                    children.append(int(stat.parent.name))
            except OSError:
                continue
        return children

    def backends(self) -> list[int]:
        with psycopg.connect(self.conninfo, application_name="bench-monitor") as connection:
            rows = connection.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND backend_type = 'client backend' AND application_name <> 'bench-monitor'"
            ).fetchall()
        return [pid for (pid,) in rows]

    def snapshot(self) -> tuple[dict[int, float], dict[int, float]]:
        return (
            {pid: process_cpu(pid) for pid in self.workers()},
            {pid: process_cpu(pid) for pid in self.backends()},
        )

    @staticmethod
    def spent(before: dict[int, float], after: dict[int, float]) -> float:
        return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


class LockWaitSampler:
    """Samples pg_stat_activity every 20 ms while a run goes: how often the app's
    backends wait for a row lock (another submit's ticket counter or audit head)."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self.busy = 0
        self.waiting: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> "LockWaitSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        with psycopg.connect(self.conninfo, autocommit=True, application_name="bench-monitor") as connection:
            while not self._stop.wait(0.02):
                rows = connection.execute(
                    "SELECT wait_event_type, left(query, 40) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND application_name <> 'bench-monitor'"
                    " AND backend_type = 'client backend'"
                    " AND state IN ('active', 'idle in transaction')"
                ).fetchall()
                self.busy += len(rows)
                self.waiting.update(query for wait, query in rows if wait == "Lock")

    @property
    def share(self) -> float:
        return sum(self.waiting.values()) / self.busy if self.busy else 0.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_gunicorn(
    name: str, app_spec: str, env: dict[str, str], work: Path, *extra: str, root: Path = ROOT, workers: int
) -> Server:
    port = free_port()
    log = work / f"{name}-gunicorn.log"
    command = [
        str(Path(sys.executable).parent / "gunicorn"),
        "--workers",
        str(workers),
        "--bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        *extra,
        app_spec,
    ]
    process = subprocess.Popen(
        command, cwd=root, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
    )
    server = Server(name, port, process, log)
    wait_until_ready(server, "/healthz" if name == "form" else "/", seconds=60)
    return server


def wait_until_ready(server: Server, path: str, *, seconds: float, ready=lambda: True) -> None:
    """Until ``path`` answers 200 and ``ready()`` holds; exits the bench if the server
    dies or does not come up within ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            sys.exit(f"{server.name} gunicorn exited: see {server.log}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=2)
            connection.request("GET", path)
            if connection.getresponse().status == 200 and ready():
                return
        except OSError:
            pass
        time.sleep(0.2)
    server.stop()
    sys.exit(f"{server.name} gunicorn did not answer on {path}: see {server.log}")


# --- the form's tenant and its tokens ------------------------------------------------------


def prepare_form_tenant(url: str, conninfo: str) -> int:
    """The bench tenant (made through the service if missing) with its per-IP limit raised."""
    app = crm.create_app({"SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        tenant = tenant_by_slug(FORM_SLUG)
        if tenant is None:
            tenant = create_tenant(
                slug=FORM_SLUG, name="华信通讯 表单压测 (perf)", actor=Actor.operator("bench")
            )
            db.session.commit()
        tenant_id = tenant.id
        db.session.remove()
        db.engine.dispose()
    with psycopg.connect(conninfo) as connection:
        # Raw SQL: no service changes tenant settings yet.
        connection.execute(
            "UPDATE tenant_settings SET form_submissions_per_hour = 10000000 WHERE tenant_id = %s",
            (tenant_id,),
        )
    return tenant_id


def fetch_form(connection: http.client.HTTPConnection, path: str) -> tuple[str, str, str]:
    """GET the form with no cookie: (session cookie, CSRF token, submission token)."""
    connection.request("GET", path, headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    response = connection.getresponse()
    html = response.read().decode()
    if response.status != 200:
        raise RuntimeError(f"GET {path} answered {response.status}")
    cookie = next(
        value.split(";", 1)[0]
        for key, value in response.getheaders()
        if key.lower() == "set-cookie" and value.startswith("session=")
    )
    csrf = VALUE.search(CSRF_INPUT.search(html).group(0)).group(1)
    token = VALUE.search(TOKEN_INPUT.search(html).group(0)).group(1)
    return cookie, csrf, token


def fetch_forms(server: Server, path: str, count: int, threads: int = 4) -> list[tuple[str, str, str]]:
    def fetch_share(share: int) -> list[tuple[str, str, str]]:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            return [fetch_form(connection, path) for _ in range(share)]
        finally:
            connection.close()

    shares = [count // threads + (1 if k < count % threads else 0) for k in range(threads)]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return [triple for part in pool.map(fetch_share, shares) for triple in part]


class Customers:
    """Form values a customer would type; one in seven is a returning customer."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.phones: list[str] = []
        self.served = 0  # entries made: each has its own address
        self.reasons = [reason for reason, _ in REASONS]

    def phone(self) -> str:
        rng = self.rng
        if self.phones and rng.random() < 1 / 7:
            return rng.choice(self.phones)
        number = f"{rng.choice(MOBILE_PREFIXES)}{rng.randrange(100_000_000):08d}"
        self.phones.append(number)
        # Typed as people type it: plain, spaced, or with the country code.
        return rng.choice((number, f"{number[:3]} {number[3:7]} {number[7:]}", f"+86 {number}"))

    def fields(self) -> tuple[dict[str, str], str]:
        """(form fields without the tokens, Accept-Language)."""
        rng = self.rng
        surname, surname_latin = rng.choice(SURNAMES)
        given, given_latin = rng.choice(GIVEN_NAMES)
        chinese = rng.random() < 0.8
        reason = rng.choice(self.reasons)
        amount = f"{rng.randrange(20, 5000)}.{rng.choice(('00', '00', '50', '99'))}"
        template = rng.choice((DESCRIPTIONS_ZH if chinese else DESCRIPTIONS_EN)[reason])
        fields = {
            "name": surname + given if chinese else f"{surname_latin} {given_latin}",
            "phone": self.phone(),
            "email": (
                f"{given_latin}.{surname_latin}{rng.randrange(10_000)}@{rng.choice(EMAIL_DOMAINS)}".lower()
                if rng.random() < 0.55
                else ""
            ),
            "account_ref": f"HX{rng.randrange(10_000_000, 99_999_999)}" if rng.random() < 0.7 else "",
            "purchase_date": (
                (date.today() - timedelta(days=rng.randrange(1, 200))).isoformat()
                if rng.random() < 0.6
                else ""
            ),
            "amount": amount if rng.random() < 0.85 else "",
            "currency": "CNY",
            "reason": reason,
            "description": template.format(amount=amount),
            "consent": "y",
            "website": "",
        }
        return fields, "zh-CN,zh;q=0.9,en;q=0.5" if chinese else "en-GB,en;q=0.9"


def lua_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def write_lua_data(path: Path, url_path: str, entries: list[tuple[str, ...]]) -> None:
    """A Lua file returning {path=…, entries={{body, cookie, lang, ip}, …}}. Entries are added
    by functions of 1,000 each: LuaJIT caps the constants of one function."""
    lines = [f"local entries = {{}}\nlocal path = {lua_string(url_path)}"]
    for start in range(0, len(entries), 1000):
        lines.append("do (function()")
        for body, cookie, lang, ip in entries[start : start + 1000]:
            lines.append(
                f"entries[#entries + 1] = {{body = {lua_string(body)}, cookie = {lua_string(cookie)},"
                f" lang = {lua_string(lang)}, ip = {lua_string(ip)}}}"
            )
        lines.append("end)() end")
    lines.append("return {path = path, entries = entries}\n")
    path.write_text("\n".join(lines))


def customer_address(serial: int) -> str:
    """A customer's own address (100.64.0.0/10, shared address space: never a real one)."""
    return f"100.{64 + (serial >> 16) % 64}.{(serial >> 8) & 255}.{serial & 255}"


def form_entries(triples: list[tuple[str, str, str]], customers: Customers) -> list[tuple[str, ...]]:
    entries = []
    for cookie, csrf, token in triples:
        fields, lang = customers.fields()
        body = urlencode({**fields, "csrf_token": csrf, "submission_token": token})
        customers.served += 1
        entries.append((body, cookie, lang, customer_address(customers.served)))
    return entries


def bare_entries(count: int, customers: Customers) -> list[tuple[str, ...]]:
    return [(urlencode(customers.fields()[0]), "", "", "") for _ in range(count)]


# --- wrk ----------------------------------------------------------------------------------


def run_wrk(
    label: str,
    server: Server,
    conninfo: str,
    url_path: str,
    data: Path,
    connections: int,
    seconds: float,
    *,
    cycle: bool,
) -> WrkRun:
    threads = min(2, connections)
    cpu = ServerCpu(server, conninfo)
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{round(seconds)}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(LUA_SCRIPT),
        server.base + url_path,
        "--",
        str(data),
        str(threads),
        "cycle" if cycle else "once",
    ]
    app_before, db_before = cpu.snapshot()
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    app_after, db_after = cpu.snapshot()
    summary = re.search(r"^BENCH requests=.*$", output, re.MULTILINE).group(0)
    values = dict(item.split("=") for item in summary.split()[1:])
    statuses = {int(s): int(n) for s, n in re.findall(r"^BENCH status (\d+) (\d+)$", output, re.MULTILINE)}
    requests = int(values["requests"])
    elapsed = float(values["seconds"])
    return WrkRun(
        label=label,
        connections=connections,
        seconds=elapsed,
        requests=requests,
        rate=requests / elapsed,
        p50_ms=float(values["p50_ms"]),
        p90_ms=float(values["p90_ms"]),
        p99_ms=float(values["p99_ms"]),
        max_ms=float(values["max_ms"]),
        errors=int(values["errors"]),
        timeouts=int(values["timeouts"]),
        reused=int(values["reused"]),
        sent=int(values["sent"]),
        statuses=statuses,
        app_cpu_ms=1000 * ServerCpu.spent(app_before, app_after) / max(requests, 1),
        db_cpu_ms=1000 * ServerCpu.spent(db_before, db_after) / max(requests, 1),
    )


def form_counts(conninfo: str, tenant_id: int) -> tuple[int, int]:
    """(tickets, submission tokens used more than once or left without a ticket)."""
    with psycopg.connect(conninfo) as connection:
        return connection.execute(
            "SELECT (SELECT count(*) FROM tickets WHERE tenant_id = %(t)s),"
            " (SELECT count(*) FROM submission_uses"
            "   WHERE tenant_id = %(t)s AND (attempts > 1 OR ticket_id IS NULL))",
            {"t": tenant_id},
        ).fetchone()


class FormBench:
    """Runs of the real form, each with its own freshly fetched tokens and its own check."""

    def __init__(self, server: Server, conninfo: str, tenant_id: int, work: Path, customers: Customers):
        self.server, self.conninfo, self.tenant_id = server, conninfo, tenant_id
        self.work, self.customers = work, customers
        self.path = f"/t/{FORM_SLUG}/refund"

    def settled_counts(self) -> tuple[int, int]:
        """The counts once the requests still in flight at wrk's stop have committed."""
        counts = form_counts(self.conninfo, self.tenant_id)
        for _ in range(20):
            time.sleep(0.5)
            again = form_counts(self.conninfo, self.tenant_id)
            if again == counts:
                break
            counts = again
        return counts

    def prepare(self, tokens: int) -> tuple[list[tuple[str, ...]], float]:
        """Fresh (body, cookie, Accept-Language, address) entries, and the seconds fetching took."""
        began = time.perf_counter()
        entries = form_entries(fetch_forms(self.server, self.path, tokens), self.customers)
        return entries, time.perf_counter() - began

    def run(self, label: str, connections: int, seconds: float, tokens: int) -> WrkRun:
        """wrk at ``connections``, closed-loop."""
        entries, fetched = self.prepare(tokens)
        data = self.work / f"{label}.lua"
        write_lua_data(data, self.path, entries)
        before, _ = form_counts(self.conninfo, self.tenant_id)
        with LockWaitSampler(self.conninfo) as locks:
            result = run_wrk(
                label, self.server, self.conninfo, self.path, data, connections, seconds, cycle=False
            )
        return self.checked(result, locks, before, fetched, in_flight=connections)

    def run_open_loop(self, label: str, rate: float, seconds: float) -> WrkRun:
        """Poisson arrivals at ``rate`` per second, whatever the server does."""
        entries, fetched = self.prepare(int(rate * seconds * 1.3) + 50)
        before, _ = form_counts(self.conninfo, self.tenant_id)
        with LockWaitSampler(self.conninfo) as locks:
            result = open_loop(label, self.server, self.conninfo, self.path, entries, rate, seconds)
        return self.checked(result, locks, before, fetched, in_flight=0)

    def checked(self, result: WrkRun, locks: "LockWaitSampler", before: int, fetched: float, in_flight: int):
        """Every request written made exactly one ticket: those answered (302) and the
        few still in flight when wrk closed its connections (the server finishes them);
        no token twice, no 5xx."""
        result.lock_wait_share, result.lock_waits = locks.share, dict(locks.waiting.most_common(3))
        after, bad_tokens = self.settled_counts()
        result.tickets_created = after - before
        redirects = result.statuses.get(302, 0)
        server_errors = sum(n for status, n in result.statuses.items() if status >= 500)
        problems = []
        if result.tickets_created != result.sent:
            problems.append(f"{result.tickets_created} tickets for {result.sent} requests sent")
        if not 0 <= result.sent - redirects <= in_flight:
            problems.append(f"{result.sent - redirects} requests unanswered")
        if server_errors:
            problems.append(f"{server_errors} 5xx")
        if bad_tokens:
            problems.append(f"{bad_tokens} tokens reused or ticketless")
        if result.reused:
            problems.append(f"ran out of tokens ({result.reused} resent): raise --tokens")
        if set(result.statuses) - {302}:
            problems.append(f"statuses {result.statuses}")
        result.check = "; ".join(problems) or "ok"
        print(
            f"  {result.label:<14} c={result.connections:<2} {result.rate:7.1f} req/s"
            f"  p50 {result.p50_ms:6.1f} ms"
            f"  p99 {result.p99_ms:6.1f} ms  tickets {result.tickets_created} = sent {result.sent}"
            f" (302s {redirects}), lock waits {result.lock_wait_share:.0%},"
            f" cpu/req app {result.app_cpu_ms:.1f} + db {result.db_cpu_ms:.1f} ms"
            f"  [{result.check}]  (tokens fetched in {fetched:.0f} s)"
        )
        return result


def open_loop(
    label: str,
    server: Server,
    conninfo: str,
    path: str,
    entries: list[tuple[str, ...]],
    rate: float,
    seconds: float,
) -> WrkRun:
    """Send ``entries`` at Poisson-distributed instants averaging ``rate`` per second, each
    on its own connection (gunicorn's sync workers close every connection anyway). A
    response's latency counts from the instant its request was due, so time spent
    waiting behind a slow server is counted, not hidden (no coordinated omission)."""
    rng = random.Random(len(entries))
    due, elapsed = [], rng.expovariate(rate)
    while elapsed < seconds:
        due.append(elapsed)
        elapsed += rng.expovariate(rate)
    if len(due) > len(entries):
        sys.exit(f"{label}: {len(due)} requests due but only {len(entries)} tokens")
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors = [0]
    start = time.perf_counter() + 0.5

    def send(index: int) -> None:
        body, cookie, lang, ip = entries[index]
        at = start + due[index]
        time.sleep(max(0.0, at - time.perf_counter()))
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": cookie,
            "Accept-Language": lang,
            "X-Forwarded-For": ip,
        }
        try:
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            connection.close()
        except OSError:
            errors[0] += 1
            return
        latencies.append((time.perf_counter() - at) * 1000)
        statuses[response.status] += 1

    cpu = ServerCpu(server, conninfo)
    app_before, db_before = cpu.snapshot()
    # Enough threads that one is always free to send on time at this rate.
    with ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(send, range(len(due))))
    finished = time.perf_counter()
    app_after, db_after = cpu.snapshot()
    answered = len(latencies)
    return WrkRun(
        label=label,
        connections=0,
        seconds=finished - start,
        requests=answered,
        rate=answered / (finished - start),
        p50_ms=quantile(latencies, 0.50),
        p90_ms=quantile(latencies, 0.90),
        p99_ms=quantile(latencies, 0.99),
        max_ms=max(latencies, default=0.0),
        errors=errors[0] + sum(n for status, n in statuses.items() if status >= 400),
        timeouts=0,
        reused=0,
        sent=len(due),
        statuses=dict(statuses),
        app_cpu_ms=1000 * ServerCpu.spent(app_before, app_after) / max(answered, 1),
        db_cpu_ms=1000 * ServerCpu.spent(db_before, db_after) / max(answered, 1),
        offered_rate=rate,
    )


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def bare_run(
    label: str, server: Server, conninfo: str, data: Path, connections: int, seconds: float
) -> WrkRun:
    result = run_wrk(label, server, conninfo, "/submit", data, connections, seconds, cycle=True)
    result.check = "ok" if set(result.statuses) == {302} and not result.reused else f"{result.statuses}"
    print(
        f"  {label:<14} c={connections:<2} {result.rate:7.1f} req/s  p50 {result.p50_ms:6.1f} ms"
        f"  p99 {result.p99_ms:6.1f} ms  cpu/req app {result.app_cpu_ms:.1f} + db {result.db_cpu_ms:.1f} ms"
        f"  [{result.check}]"
    )
    return result


def server_settings(conninfo: str) -> dict[str, str]:
    names = ("server_version", "synchronous_commit", "fsync", "shared_buffers", "max_connections")
    with psycopg.connect(conninfo) as connection:
        return {name: connection.execute(f"SHOW {name}").fetchone()[0] for name in names}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/5")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--latency-seconds", type=float, default=15)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="sync workers of each gunicorn, the same for both (the Procfile deploys 4: with as many "
        "workers as cores, the tenant's ticket counter is less often waited for)",
    )
    parser.add_argument("--rounds", type=int, default=2, help="form max runs, each followed by a bare one")
    parser.add_argument("--latency-connections", default="1,2")
    parser.add_argument(
        "--tokens-per-second",
        type=int,
        default=0,
        help="tokens fetched per second of a max run (0: estimate)",
    )
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--app-root", type=Path, default=ROOT, help="the checkout the form is served from (default: this one)"
    )
    args = parser.parse_args()

    url = make_url(args.database_url)
    sqlalchemy_url = url.render_as_string(hide_password=False)
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    work = Path(tempfile.mkdtemp(prefix="ledgerdesk-form-bench-"))
    print(f"work files in {work}")

    tenant_id = prepare_form_tenant(sqlalchemy_url, conninfo)
    bare_app.create_schema(sqlalchemy_url)
    env = {k: v for k, v in os.environ.items() if k not in ("CRM_ENV", "SMTP_URL", "PUBLIC_BASE_URL")}
    env.update(DATABASE_URL=sqlalchemy_url, REDIS_URL=args.redis_url, SECRET_KEY=SECRET_KEY)
    form_env = {**env, "TRUSTED_PROXIES": "1", "PYTHONPATH": str(args.app_root.resolve())}
    print(f"form served from {args.app_root.resolve()}, AUDIT_CHAINING={env.get('AUDIT_CHAINING', 'inline')}")
    servers = [
        start_gunicorn(
            "form", "wsgi:app", form_env, work, root=args.app_root.resolve(), workers=args.workers
        ),
        start_gunicorn(
            "bare", "bare_app:create_app()", env, work, "--chdir", str(ROOT / "bench"), workers=args.workers
        ),
    ]
    form_server, bare_server = servers
    customers = Customers(seed=7)
    results: list[WrkRun] = []
    try:
        bare_data = work / "bare.lua"
        write_lua_data(bare_data, "/submit", bare_entries(5000, customers))
        form = FormBench(form_server, conninfo, tenant_id, work, customers)
        print("warm-up")
        bare_run("bare warm-up", bare_server, conninfo, bare_data, 4, 3)
        warm = form.run("form warm-up", 8, 4, tokens=3000)
        estimate = args.tokens_per_second or int(max(warm.rate, 50) * 1.6) + 20
        print("measured: each round is form max, form at half that rate (open loop), bare max")
        bare_runs = [bare_run("bare max", bare_server, conninfo, bare_data, args.connections, args.seconds)]
        form_runs, half_runs = [], []
        for _ in range(args.rounds):
            tokens = int(estimate * args.seconds)
            form_runs.append(form.run("form max", args.connections, args.seconds, tokens))
            # Half the rate just measured, so both see the machine in the same state.
            half_runs.append(form.run_open_loop("form half-max", form_runs[-1].rate / 2, args.seconds))
            bare_runs.append(
                bare_run("bare max", bare_server, conninfo, bare_data, args.connections, args.seconds)
            )
        form_rate = statistics.median(run.rate for run in form_runs)
        print("measured: wrk with fewer connections (closed loop)")
        tokens = int(form_rate * args.latency_seconds * 1.3) + 100
        latency_runs = [
            form.run(f"form c{connections}", connections, args.latency_seconds, tokens)
            for connections in (int(c) for c in args.latency_connections.split(","))
        ]
    finally:
        for server in servers:
            server.stop()

    bare_rate = statistics.median(run.rate for run in bare_runs)
    ratio = form_rate / bare_rate
    half_p99 = statistics.median(run.p99_ms for run in half_runs)
    cpu_ratio = statistics.median(r.app_cpu_ms + r.db_cpu_ms for r in bare_runs) / statistics.median(
        r.app_cpu_ms + r.db_cpu_ms for r in form_runs
    )
    print()
    print(f"bare INSERT rate (median of {len(bare_runs)} runs): {bare_rate:.1f} req/s")
    print(
        f"form max rate (median of {len(form_runs)} runs): {form_rate:.1f} req/s"
        f" = {ratio:.2f} of bare (goal >= {GOAL_RATIO}); server CPU per request: bare/form = {cpu_ratio:.2f}"
    )
    for run in half_runs:
        print(
            f"half max (open loop, Poisson arrivals at {run.offered_rate:.1f}/s): {run.rate:.1f} req/s"
            f" ({run.rate / form_rate:.2f} of max): p50 {run.p50_ms:.1f} ms, p99 {run.p99_ms:.1f} ms"
        )
    print(f"half max p99, median of {len(half_runs)} runs: {half_p99:.1f} ms (goal < {GOAL_P99_MS:.0f} ms)")
    results = [*bare_runs, *form_runs, *half_runs, *latency_runs]
    checks = [run.check for run in results if run.label.startswith("form")]
    print(f"checks: {'all ok' if all(c == 'ok' for c in checks) else checks}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "server": server_settings(conninfo),
                    "cpus": os.cpu_count(),
                    "bare_rate": bare_rate,
                    "form_rate": form_rate,
                    "form_ratio": ratio,
                    "cpu_ratio": cpu_ratio,
                    "half_max_p99": half_p99,
                    "runs": [asdict(run) for run in results],
                },
                indent=2,
                default=str,
            )
        )


if __name__ == "__main__":
    main()
