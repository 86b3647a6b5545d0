"""The dialer's question before every call, at volume: GET /t/<slug>/api/v1/dnc/check
with 1,000,000 entries on the list (100,000 in the tenant), through the whole app (key,
scope, rate limit, lookup, JSON) in-process, against a baseline measured in the same run:
the health endpoint, the cheapest request the app serves.

    .venv/bin/python bench/dnc_check.py \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/ledgerdesk_bench_dnc \\
        [--entries 1000000] [--runs 400]
"""

import argparse
import random
import statistics
import time

import flask_migrate
import psycopg
from sqlalchemy.engine import make_url

import crm
from crm.api import keys
from crm.audit.service import Actor
from crm.extensions import db
from crm.provisioning.service import create_tenant, tenant_by_slug
from tenants import tenant_context


def load(url: str, tenant_ids: list[int], per_tenant: list[int]) -> None:
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo) as connection, connection.cursor() as cursor:
        serial = 0
        columns = "tenant_id, kind, value, reason, source, created_at"
        with cursor.copy(f"COPY do_not_contact ({columns}) FROM STDIN") as copy:
            for tenant_id, count in zip(tenant_ids, per_tenant, strict=True):
                for _ in range(count):
                    serial += 1
                    copy.write_row(
                        (tenant_id, "phone", f"+8613{serial:09d}", "asked", "import", "2026-11-01T00:00:00Z")
                    )
        connection.commit()
        cursor.execute("ANALYZE do_not_contact")
        connection.commit()


def ms(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[max(0, int(len(ordered) * 0.95) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=400)
    args = parser.parse_args()
    app = crm.create_app(
        {"SQLALCHEMY_DATABASE_URI": args.database_url, "REDIS_URL": None, "API_RATE_LIMIT": "1000000/minute"}
    )
    with app.app_context():
        flask_migrate.upgrade()
        tenant = tenant_by_slug("dnc-00")
        if tenant is None:
            tenants = [
                create_tenant(slug=f"dnc-{t:02d}", name=f"DNC {t}", actor=Actor.operator("bench"))
                for t in range(10)
            ]
            db.session.commit()
            load(args.database_url, [t.id for t in tenants], [args.entries // 10] * 10)
            tenant = tenants[0]
        with tenant_context(tenant):
            secret = keys.create_key(
                name="bench", scopes="dnc:read", expires_at=None, actor=Actor.operator("bench")
            ).secret
            db.session.commit()
        slug = tenant.slug
    client = app.test_client()
    headers = {"Authorization": f"Bearer {secret}"}
    rng = random.Random(3)
    listed = [f"13{n:09d}" for n in rng.sample(range(1, args.entries // 10), args.runs // 2)]
    unlisted = [f"15{n:09d}" for n in rng.sample(range(1, 10**8), args.runs // 2)]
    for phone in listed[:20]:  # warm up
        client.get(f"/t/{slug}/api/v1/dnc/check?phone={phone}", headers=headers)
    baseline, check = [], []
    answers = {"blocked": 0, "allowed": 0}
    for phone in listed + unlisted:
        started = time.perf_counter()
        client.get("/healthz")
        baseline.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        response = client.get(f"/t/{slug}/api/v1/dnc/check?phone={phone}", headers=headers)
        check.append((time.perf_counter() - started) * 1000)
        answers["allowed" if response.json["allowed"] else "blocked"] += 1
    base, base95 = ms(baseline)
    median, p95 = ms(check)
    print(f"entries: {args.entries:,} (100,000 in the tenant); answers: {answers}")
    print(f"GET /healthz (baseline): median {base:.2f} ms, p95 {base95:.2f} ms")
    print(f"GET /api/v1/dnc/check: median {median:.2f} ms, p95 {p95:.2f} ms")
    print(f"p95 / baseline median: {p95 / base:.1f}x")


if __name__ == "__main__":
    main()
