"""Queue and search latency on a seeded desk (``bench/seed.py``: 1,000,000 tickets, 100,000
of them in ``perf-00``), with ``/healthz`` as the in-run baseline.

Over HTTP against gunicorn (2 sync workers, the real ``wsgi:app``), one client, requests
one after another (latency, not throughput), signed in as the big tenant's agent. For
each view it times the first page, then follows the page's own "Next page" link (the
``after`` cursor it renders) for ``--pages`` pages; it also jumps straight to a cursor
half-way and 95% of the way through the tenant's history; and it times searches by
reference, phone (E.164 and as typed), name, account reference and email, plus one that
matches nothing. Each round visits every scenario, ``/healthz`` in between; rounds repeat.

Full-text searches (``crm.tickets.search``, what was said on a ticket; seed with
``--messages-per-ticket 5`` for threads worth searching): a common Chinese word (退款), a
less common one (发票), one in a few per cent of tickets (报销), a rare one (仲裁), an
order number (one ticket), a four-character phrase (虚拟号码), an English prefix
(refun), two words together, a word the other tenants use but perf-00 hardly does (彩铃),
one nobody uses, and the common word in the "open" view (one branch per status). How
many of the tenant's tickets each matches is printed with its timings. ``--only-search``
times the searches alone.

Then, in-process (Flask test client on the same database), it logs the SQL the queue
emits for a first page, a deep page and the searches, and runs ``EXPLAIN (ANALYZE,
BUFFERS)`` on each, to show which indexes the keyset pages use and flag any sequential
scan of ``tickets``.

    .venv/bin/python bench/queue_latency.py \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/ledgerdesk_perf \\
        [--pages 20] [--rounds 10] [--only-search] [--explain-out explain.txt] [--json out.json]
"""

import argparse
import html
import http.client
import json
import os
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import psycopg
from sqlalchemy import event
from sqlalchemy.engine import make_url

import crm
from crm.extensions import db
from crm.tickets import search
from crm.tickets.queue import Cursor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from form_load import SECRET_KEY, Server, start_gunicorn  # sibling scripts, not a package
from seed import AGENT_PASSWORD, BIG_SLUG

ROOT = Path(__file__).resolve().parent.parent
GOAL_P95_MS = 100.0
NEXT_LINK = re.compile(r'<a[^>]*href="([^"]+)"[^>]*rel="next"')
SQL_TABLE = re.compile(r"FROM (tickets|customers|thread_entries)\b")
INDEX_USED = re.compile(r"(?:Index (?:Only )?Scan (?:Backward )?using|Bitmap Index Scan on) (\S+)")
CSRF_INPUT = re.compile(r'<input[^>]*\bname="csrf_token"[^>]*\bvalue="([^"]*)"')
VIEWS = (
    ("all", {"view": "all"}),
    ("all, newest first", {"view": "all", "sort": "newest"}),
    ("open", {"view": "open"}),
    ("mine", {"view": "mine"}),
    ("awaiting customer", {"view": "awaiting_customer"}),
    ("resolved", {"view": "resolved"}),
)


@dataclass
class Timings:
    first: list[float] = field(default_factory=list)
    later: list[float] = field(default_factory=list)
    rows_seen: int = 0


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Client:
    """One keep-alive connection with a cookie jar of one cookie (the session)."""

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.cookie = ""

    def request(self, method: str, path: str, body: str | None = None) -> tuple[int, str, float]:
        headers = {"Cookie": self.cookie} if self.cookie else {}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        began = time.perf_counter()
        self.connection.request(method, path, body=body, headers=headers)
        response = self.connection.getresponse()
        text = response.read().decode()
        elapsed = (time.perf_counter() - began) * 1000
        for key, value in response.getheaders():
            if key.lower() == "set-cookie" and value.startswith("session="):
                self.cookie = value.split(";", 1)[0]
        return response.status, text, elapsed

    def sign_in(self, slug: str, email: str, password: str) -> None:
        status, page, _ = self.request("GET", f"/t/{slug}/login")
        csrf = CSRF_INPUT.search(page).group(1)
        body = urlencode({"email": email, "password": password, "csrf_token": csrf})
        status, _, _ = self.request("POST", f"/t/{slug}/login", body)
        if status != 302:
            sys.exit(f"sign-in as {email} answered {status}")


def search_terms(conninfo: str, slug: str) -> list[tuple[str, dict[str, str]]]:
    """Searches for values that exist in the tenant, picked from the middle of its data."""
    with psycopg.connect(conninfo) as connection:
        reference, phone, name, account_ref = connection.execute(
            "SELECT t.reference, c.phone, c.name, c.account_ref FROM tickets t"
            " JOIN customers c ON c.id = t.customer_id JOIN tenants n ON n.id = t.tenant_id"
            " WHERE n.slug = %s AND c.account_ref IS NOT NULL AND c.name ~ '^[^ -~]+$'"
            " ORDER BY t.number LIMIT 1 OFFSET 50000",
            (slug,),
        ).fetchone()
        email = connection.execute(
            "SELECT c.email FROM customers c JOIN tenants n ON n.id = c.tenant_id"
            " WHERE n.slug = %s AND c.email IS NOT NULL ORDER BY c.id LIMIT 1 OFFSET 30000",
            (slug,),
        ).fetchone()[0]
    national = phone.removeprefix("+86")
    typed = f"{national[:3]} {national[3:7]} {national[7:]}"
    return [
        ("search: reference", {"view": "all", "q": reference}),
        ("search: phone (E.164)", {"view": "all", "q": phone}),
        ("search: phone as typed", {"view": "all", "q": typed}),
        ("search: name", {"view": "all", "q": name}),
        ("search: account ref", {"view": "all", "q": account_ref}),
        ("search: email", {"view": "all", "q": email}),
        ("search: no match", {"view": "all", "q": "13999999999"}),
    ]


def text_searches(conninfo: str, slug: str) -> list[tuple[str, dict[str, str]]]:
    """Searches of what was said (the first page of "all", and of "open" for the common
    word). The order number is one that exists in the tenant's threads."""
    with psycopg.connect(conninfo) as connection:
        row = connection.execute(
            "SELECT substring(e.body FROM 'DD[0-9]{14}') FROM thread_entries e"
            " JOIN tenants n ON n.id = e.tenant_id WHERE n.slug = %s AND e.body LIKE '%%DD%%'"
            " ORDER BY e.id LIMIT 1 OFFSET 1000",
            (slug,),
        ).fetchone()
    words = [
        ("common word", "退款"),
        ("less common word", "发票"),
        ("medium word", "报销"),
        ("rare word", "仲裁"),
        *([("order number", row[0])] if row and row[0] else []),
        ("4-char phrase", "虚拟号码"),
        ("English prefix", "refun"),
        ("two words", "退款 发票"),
        ("common + rare", "退款 仲裁"),
        ("other tenants' word", "彩铃"),
        ("word nobody uses", "鲸鱼"),
    ]
    scenarios = [(f"search text: {label}", {"view": "all", "q": q}) for label, q in words]
    scenarios.append(("search text: common, open", {"view": "open", "q": "退款"}))
    return scenarios


def text_matches(conninfo: str, slug: str, scenarios) -> dict[str, int]:
    """How many of the tenant's tickets each text search's words match (any status)."""
    counts = {}
    with psycopg.connect(conninfo) as connection:
        tenant_id = connection.execute("SELECT id FROM tenants WHERE slug = %s", (slug,)).fetchone()[0]
        for label, params in scenarios:
            terms = search.parse(params.get("q", ""))
            if not label.startswith("search text") or not terms:
                continue
            counts[label] = connection.execute(
                "SELECT count(*) FROM tickets WHERE tenant_id = %s AND search_vector @@ CAST(%s AS tsquery)",
                (tenant_id, search.tsquery_literal(terms, tenant_id)),
            ).fetchone()[0]
    return counts


def jump_cursors(conninfo: str, slug: str) -> list[tuple[str, dict[str, str]]]:
    """Cursors deep into "all" (oldest first), as a bookmarked page link would carry."""
    jumps = []
    with psycopg.connect(conninfo) as connection:
        total = connection.execute(
            "SELECT count(*) FROM tickets t JOIN tenants n ON n.id = t.tenant_id WHERE n.slug = %s", (slug,)
        ).fetchone()[0]
        for share in (0.5, 0.95):
            created_at, ticket_id = connection.execute(
                "SELECT t.created_at, t.id FROM tickets t JOIN tenants n ON n.id = t.tenant_id"
                " WHERE n.slug = %s ORDER BY t.created_at, t.id LIMIT 1 OFFSET %s",
                (slug, int(total * share)),
            ).fetchone()
            after = Cursor(created_at, ticket_id).encode()
            jumps.append((f"all, page at {share:.0%}", {"view": "all", "after": after}))
    return jumps


def measure(client: Client, slug: str, scenarios, pages: int, rounds: int) -> tuple[dict, list[float]]:
    timings = {label: Timings() for label, _ in scenarios}
    health: list[float] = []
    for _ in range(rounds):
        for label, params in scenarios:
            health.append(client.request("GET", "/healthz")[2])
            status, page, elapsed = client.request("GET", f"/t/{slug}/tickets?{urlencode(params)}")
            if status != 200:
                sys.exit(f"{label}: the queue answered {status}")
            timings[label].first.append(elapsed)
            for _ in range(pages if "after" not in params else 0):
                link = NEXT_LINK.search(page)
                if link is None:
                    break
                status, page, elapsed = client.request("GET", html.unescape(link.group(1)))
                if status != 200:
                    sys.exit(f"{label}: a later page answered {status}")
                timings[label].later.append(elapsed)
    return timings, health


# --- EXPLAIN ---------------------------------------------------------------------------------


def explain_queue_sql(url: str, conninfo: str, slug: str, email: str, scenarios, out: Path) -> list[dict]:
    """EXPLAIN (ANALYZE, BUFFERS) of the SQL each scenario's page emits (first page, and
    the page its "Next page" link leads to)."""
    app = crm.create_app({"SQLALCHEMY_DATABASE_URI": url, "WTF_CSRF_ENABLED": False})
    captured: list[tuple[str, dict]] = []
    with app.app_context():
        event.listen(
            db.engine,
            "before_cursor_execute",
            lambda conn, cursor, statement, parameters, context, many: captured.append(
                (statement, parameters)
            ),
        )
    client = app.test_client()
    client.post(f"/t/{slug}/login", data={"email": email, "password": AGENT_PASSWORD})
    reports = []
    with psycopg.connect(conninfo) as connection, open(out, "w") as sink:
        cursor = psycopg.ClientCursor(connection)
        for label, params in scenarios:
            for which in ("first page", "next page"):
                captured.clear()
                response = client.get(f"/t/{slug}/tickets?{urlencode(params)}")
                page = response.get_data(as_text=True)
                for statement, parameters in captured:
                    if not SQL_TABLE.search(statement):
                        continue
                    sql = cursor.mogrify(statement, parameters)
                    plan = "\n".join(
                        row[0] for row in cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql).fetchall()
                    )
                    sink.write(f"==== {label} — {which}\n{sql}\n\n{plan}\n\n")
                    reports.append(
                        {
                            "scenario": label,
                            "page": which,
                            "table": SQL_TABLE.search(statement).group(1),
                            "indexes": sorted(set(re.findall(INDEX_USED, plan))),
                            # Rows an index led to that the filter then threw away: a
                            # search that reads the whole tenant shows up here.
                            "rows_filtered": max(
                                map(int, re.findall(r"Rows Removed by Filter: (\d+)", plan)), default=0
                            ),
                            "seq_scans": sorted(set(re.findall(r"Seq Scan on (\S+)", plan))),
                            "execution_ms": float(re.search(r"Execution Time: ([\d.]+)", plan).group(1)),
                        }
                    )
                link = NEXT_LINK.search(page)
                if link is None or "after" in params:
                    break
                params = dict(parse_qsl(urlsplit(html.unescape(link.group(1))).query))
    return reports


def wait_for_queue(url: str, slug: str, email: str, minutes: float) -> None:
    """Poll until the queue is written (crm/tickets/queue.py) and answers 200."""
    deadline = time.monotonic() + minutes * 60
    while True:
        if (ROOT / "crm" / "tickets" / "queue.py").exists():
            app = crm.create_app({"SQLALCHEMY_DATABASE_URI": url, "WTF_CSRF_ENABLED": False})
            client = app.test_client()
            client.post(f"/t/{slug}/login", data={"email": email, "password": AGENT_PASSWORD})
            if client.get(f"/t/{slug}/tickets?view=all").status_code == 200:
                return
        if time.monotonic() > deadline:
            sys.exit("the queue is not there yet")
        time.sleep(30)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/5")
    parser.add_argument("--slug", default=BIG_SLUG)
    parser.add_argument("--pages", type=int, default=20, help="later pages followed per view")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--only-search", action="store_true", help="time the searches alone")
    parser.add_argument("--wait-minutes", type=float, default=0, help="poll this long for the queue")
    parser.add_argument("--explain-out", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    url = make_url(args.database_url)
    sqlalchemy_url = url.render_as_string(hide_password=False)
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    email = f"agent0@{args.slug}.test"
    wait_for_queue(sqlalchemy_url, args.slug, email, args.wait_minutes)
    work = Path(tempfile.mkdtemp(prefix="ledgerdesk-queue-bench-"))
    scenarios = [
        *VIEWS,
        *jump_cursors(conninfo, args.slug),
        *search_terms(conninfo, args.slug),
        *text_searches(conninfo, args.slug),
    ]
    if args.only_search:
        scenarios = [scenario for scenario in scenarios if scenario[0].startswith("search")]
    matches = text_matches(conninfo, args.slug, scenarios)
    load_before = os.getloadavg()

    env = {k: v for k, v in os.environ.items() if k not in ("CRM_ENV", "SMTP_URL")}
    env.update(DATABASE_URL=sqlalchemy_url, REDIS_URL=args.redis_url, SECRET_KEY=SECRET_KEY)
    server: Server = start_gunicorn("form", "wsgi:app", env, work)
    try:
        client = Client(server.port)
        client.sign_in(args.slug, email, AGENT_PASSWORD)
        measure(client, args.slug, scenarios, 2, 1)  # warm the workers' caches and templates
        timings, health = measure(client, args.slug, scenarios, args.pages, args.rounds)
    finally:
        server.stop()

    health_p50 = statistics.median(health)
    load_after = os.getloadavg()
    print(
        f"over HTTP, gunicorn 2 workers, one client; {args.rounds} rounds, {args.pages} later pages per view"
    )
    print(
        "load average (1, 5, 15 min): before "
        + ", ".join(f"{v:.2f}" for v in load_before)
        + "; after "
        + ", ".join(f"{v:.2f}" for v in load_after)
    )
    print(f"/healthz: p50 {health_p50:.1f} ms, p95 {quantile(health, 0.95):.1f} ms ({len(health)} requests)")
    header = (
        f"{'scenario':<34} {'first p50':>9} {'p95':>7} {'later p50':>10} {'p95':>7} {'n later':>7}"
        f" {'matched':>8}"
    )
    print(header)
    rows = []
    for label, _ in scenarios:
        t = timings[label]
        row = {
            "scenario": label,
            "first_p50": statistics.median(t.first),
            "first_p95": quantile(t.first, 0.95),
            "later_p50": statistics.median(t.later) if t.later else None,
            "later_p95": quantile(t.later, 0.95) if t.later else None,
            "later_n": len(t.later),
            "matched": matches.get(label),
        }
        rows.append(row)
        later = f"{row['later_p50']:10.1f} {row['later_p95']:7.1f}" if t.later else f"{'—':>10} {'—':>7}"
        matched = f"{matches[label]:8,}" if label in matches else f"{'':>8}"
        print(
            f"{label:<34} {row['first_p50']:9.1f} {row['first_p95']:7.1f} {later} {len(t.later):7d} {matched}"
        )
    all_first = [v for t in timings.values() for v in t.first]
    all_later = [v for t in timings.values() for v in t.later] or [float("nan")]
    worst = max(max(r["first_p95"], r["later_p95"] or 0) for r in rows)
    print(
        f"all first pages p95 {quantile(all_first, 0.95):.1f} ms, all later pages p95"
        f" {quantile(all_later, 0.95):.1f} ms; worst scenario p95 {worst:.1f} ms (goal < {GOAL_P95_MS:.0f})"
    )

    explain_out = args.explain_out or work / "explain.txt"
    explained = [scenario for scenario in scenarios if scenario[0] in ("all", "open", "mine", "resolved")]
    explained += [scenario for scenario in scenarios if scenario[0].startswith(("all, page", "search"))]
    reports = explain_queue_sql(sqlalchemy_url, conninfo, args.slug, email, explained, explain_out)
    print(f"\nEXPLAIN (ANALYZE, BUFFERS) of the queue's SQL, full plans in {explain_out}:")
    for report in reports:
        scans = f"  SEQ SCAN {report['seq_scans']}" if report["seq_scans"] else ""
        filtered = report["rows_filtered"]
        note = f"  ({filtered:,} rows read, filtered out)" if filtered else ""
        print(
            f"  {report['scenario']:<34} {report['page']:<10} {report['table']:<14}"
            f" {report['execution_ms']:8.2f} ms  {', '.join(report['indexes']) or '-'}{scans}{note}"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "healthz_p50": health_p50,
                    "load_average": {"before": load_before, "after": load_after},
                    "rows": rows,
                    "explain": reports,
                },
                indent=2,
                default=str,
                ensure_ascii=False,
            )
        )


if __name__ == "__main__":
    main()
