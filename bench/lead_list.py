"""The lead list at volume: 1,000,000 leads in PostgreSQL, 100,000 of them in one tenant,
and the pipeline's views and searches (``crm.leads.listing.lead_page``) timed against a
baseline measured in the same run: fetching one lead by its primary key.

    .venv/bin/python bench/lead_list.py \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/ledgerdesk_bench_leads \\
        [--leads 1000000] [--big 100000] [--tenants 10] [--runs 40]

The leads are loaded with COPY (as bench/seed.py loads tickets), then ANALYZEd; a second
run reuses them. Stages, owners, phones, names and overdue promises are spread as a busy
sales desk has them.
"""

import argparse
import random
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

import flask_migrate
import psycopg
from sqlalchemy import select
from sqlalchemy.engine import make_url

import crm
from crm.audit.service import Actor
from crm.auth.service import create_user
from crm.extensions import db
from crm.leads import listing
from crm.leads.models import Lead
from crm.provisioning.service import create_tenant, tenant_by_slug
from tenants import tenant_context

STAGES = ("new",) * 3 + ("contacted",) * 3 + ("qualified", "trial", "won", "lost", "lost", "unreachable")
SURNAMES = ("王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "Chen", "Li", "Wang", "Zhang")
GIVEN = ("芳", "伟", "敏", "静", "磊", "洋", "艳", "勇", "军", "杰", "Wei", "Min", "Jing", "Lei")


def load(url: str, tenants: list[tuple[int, list[int]]], counts: list[int], now: datetime) -> None:
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    rng = random.Random(11)
    columns = (
        "tenant_id",
        "number",
        "reference",
        "stage",
        "name",
        "company",
        "phone",
        "email",
        "source",
        "locale",
        "assignee_id",
        "marketing_consent",
        "failed_attempts",
        "first_contact_due_at",
        "created_at",
        "updated_at",
    )
    with psycopg.connect(conninfo) as connection, connection.cursor() as cursor:
        serial = 0
        for (tenant_id, agents), count in zip(tenants, counts, strict=True):
            with cursor.copy(f"COPY leads ({', '.join(columns)}) FROM STDIN") as copy:
                for n in range(count):
                    serial += 1
                    created = now - timedelta(minutes=rng.randint(0, 730 * 24 * 60))
                    stage = rng.choice(STAGES)
                    due = created + timedelta(hours=3) if stage == "new" else None
                    copy.write_row(
                        (
                            tenant_id,
                            1001 + n,
                            f"LD-{1001 + n}",
                            stage,
                            rng.choice(SURNAMES) + rng.choice(GIVEN),
                            f"公司{rng.randint(1, 5000)}",
                            f"+861{rng.randint(3, 9)}{serial:09d}",
                            f"lead{serial}@example.test" if n % 3 == 0 else None,
                            "web_form",
                            "zh_CN",
                            rng.choice(agents) if rng.random() < 0.8 else None,
                            False,
                            0,
                            due,
                            created,
                            created,
                        )
                    )
            connection.commit()
        cursor.execute("ANALYZE leads")
        connection.commit()


def timed(call, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return times


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, int(len(values) * 0.95) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--big", type=int, default=100_000)
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    app = crm.create_app({"SQLALCHEMY_DATABASE_URI": args.database_url, "REDIS_URL": None})
    now = datetime.now(UTC)
    with app.app_context():
        flask_migrate.upgrade()
        big = tenant_by_slug("leads-00")
        if big is None:
            tenants = []
            for t in range(args.tenants):
                tenant = create_tenant(
                    slug=f"leads-{t:02d}", name=f"Leads {t}", actor=Actor.operator("bench")
                )
                db.session.flush()
                with tenant_context(tenant):
                    agents = [
                        create_user(
                            email=f"a{a}-{uuid.uuid4().hex[:4]}@leads.test",
                            role="agent",
                            password="bench password 9",
                            actor=Actor.operator("bench"),
                        ).id
                        for a in range(8)
                    ]
                    db.session.flush()
                tenants.append((tenant.id, agents))
            db.session.commit()
            rest = (args.leads - args.big) // (args.tenants - 1)
            started = time.perf_counter()
            load(args.database_url, tenants, [args.big] + [rest] * (args.tenants - 1), now)
            print(f"loaded {args.leads:,} leads in {time.perf_counter() - started:.0f} s")
            big = tenant_by_slug("leads-00")
        with tenant_context(big):
            agent = db.session.scalar(select(Lead.assignee_id).where(Lead.assignee_id.is_not(None)).limit(1))
            sample = db.session.scalars(select(Lead).where(Lead.phone.is_not(None)).limit(1)).one()
            lead_id, phone, name, reference = sample.id, sample.phone, sample.name, sample.reference
            db.session.expunge_all()
            baseline = timed(lambda: db.session.get(Lead, lead_id, populate_existing=True), args.runs)
            cases = {
                "view new": listing.LeadQuery(view="new"),
                "view mine": listing.LeadQuery(view="mine"),
                "view overdue": listing.LeadQuery(view="overdue"),
                "view all": listing.LeadQuery(view="all"),
                "q: phone's last 4": listing.LeadQuery(view="all", q=phone[-4:]),
                "q: whole phone": listing.LeadQuery(view="all", q=phone[3:]),
                "q: reference": listing.LeadQuery(view="all", q=reference.lower()),
                "q: name": listing.LeadQuery(view="all", q=name),
            }
            base = statistics.median(baseline)
            print(f"baseline (one lead by id): median {base:.2f} ms, p95 {p95(baseline):.2f} ms")
            print("| case | median ms | p95 ms | p95 / baseline median |")
            print("|---|---:|---:|---:|")
            for label, query in cases.items():
                times = timed(
                    lambda query=query: listing.lead_page(query, user_id=agent, country="CN"), args.runs
                )
                median, worst = statistics.median(times), p95(times)
                print(f"| {label} | {median:.1f} | {worst:.1f} | {worst / base:.0f}x |")
                db.session.rollback()


if __name__ == "__main__":
    main()
