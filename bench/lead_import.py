"""The lead import at volume: 100,000 CSV rows imported into PostgreSQL through
``crm.leads.imports`` (checked row by row, merged by phone, audited), against a baseline
measured in the same run: PostgreSQL's own COPY of the same rows into a bare table.

    .venv/bin/python bench/lead_import.py \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/ledgerdesk_bench_import [--rows 100000]

The database is migrated first; each run imports into a new tenant. Rows: Chinese and
English names, numbers typed plain, spaced or with +86; one in ten a phone seen earlier
(merged), one in twenty rejected (no name, a bad phone or a bad consent), half with
consent ``yes:<reference>``.
"""

import argparse
import csv
import io
import random
import sys
import time
import uuid

import flask_migrate
import psycopg
from sqlalchemy.engine import make_url

import crm
from crm.audit.service import Actor, verify_chain
from crm.extensions import db
from crm.leads import imports
from crm.provisioning.service import create_tenant
from tenants import tenant_context

NAMES = ("王芳", "李伟", "张敏", "刘洋", "陈静", "Chen Jing", "Li Wei", "Zhang Min", "Wang Tao", "赵磊")


def rows(count: int, seed: int = 7) -> bytes:
    rng = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(imports.LEAD_COLUMNS)
    phones = []
    for n in range(count):
        if phones and rng.random() < 0.10:
            phone = rng.choice(phones)
        else:
            phone = f"13{rng.randint(0, 9)}{n:08d}"
            phones.append(phone)
        typed = rng.choice(
            (phone, f"+86 {phone[:3]} {phone[3:7]} {phone[7:]}", f"{phone[:3]}-{phone[3:7]}-{phone[7:]}")
        )
        name = rng.choice(NAMES)
        consent = f"yes:form-{n}" if rng.random() < 0.5 else ""
        bad = rng.random()
        if bad < 0.02:
            name = ""
        elif bad < 0.04:
            typed = "12345"
        elif bad < 0.05:
            consent = "maybe"
        writer.writerow(
            (name, typed, f"lead{n}@example.test" if rng.random() < 0.3 else "", "", "expo", consent)
        )
    return out.getvalue().encode()


def copy_baseline(url: str, content: bytes) -> float:
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo) as connection, connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE raw_leads "
            "(name text, phone text, email text, company text, source text, consent text)"
        )
        started = time.perf_counter()
        with cursor.copy("COPY raw_leads FROM STDIN WITH (FORMAT csv, HEADER true)") as copy:
            copy.write(content)
        connection.commit()
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    app = crm.create_app({"SQLALCHEMY_DATABASE_URI": args.database_url, "REDIS_URL": None})
    content = rows(args.rows)
    with app.app_context():
        flask_migrate.upgrade()
        tenant = create_tenant(
            slug=f"import-{uuid.uuid4().hex[:8]}", name="Import bench", actor=Actor.operator("bench")
        )
        db.session.commit()
        parsed = list(imports.read_csv(content, imports.LEAD_COLUMNS))
        with tenant_context(tenant):
            started = time.perf_counter()
            result = imports.import_leads(parsed, actor=Actor.operator("bench"))
            elapsed = time.perf_counter() - started
            verified = verify_chain()
    baseline = copy_baseline(args.database_url, content)
    print(f"rows: {args.rows:,}; {result.summary}")
    print(f"import: {elapsed:.1f} s ({args.rows / elapsed:,.0f} rows/s); COPY baseline: {baseline:.2f} s")
    print(f"ratio import / COPY: {elapsed / baseline:.0f}x; audit chain verifies: {verified.ok}")
    sys.exit(0 if elapsed < 60 else 1)


if __name__ == "__main__":
    main()
