"""What one hosted-form submission costs in-process, in CPU time, and where it goes.

Two measurements on the same PostgreSQL (and Redis, for the rate limiter and the email
job), alternated round by round:

- **service**: ``submit_refund_request`` and its commit (token, customer, ticket and its
  clocks, message, tracking link, receipt email, audit events), without HTTP in front;
- **post**: the whole ``POST /t/<slug>/refund`` through the Flask test client: tenant
  lookup, rate limit, session cookie, CSRF, form parsing and validation, the service,
  the commit, the redirect. Each POST carries a token from its own GET of the form
  (not measured), so each is a first submit that makes a ticket.

``post − service`` is what the request around the submit costs. CPU time is the
process's (``time.process_time``: the background audit chainer's share included), so
the neighbours' load moves it far less than wall time. Also prints SQL statements per
submission (counted with an engine event).

Run it from two checkouts against the same server to see what a change costs:

    git worktree add /tmp/before <commit>
    PYTHONPATH=/tmp/before .venv/bin/python /tmp/before/bench/submit_cost.py   # if it has the script
    .venv/bin/python bench/submit_cost.py [--chaining background]

The database is dropped and recreated (its name must contain "bench").
"""

import argparse
import re
import statistics
import time
import uuid

import flask_migrate
from seed import reset_database  # bench/seed.py: drops only a 'bench' or 'perf' database
from sqlalchemy import event, update

import crm
from crm.audit.service import Actor
from crm.extensions import db
from crm.provisioning import service as provisioning
from crm.provisioning.models import TenantSettings
from crm.tickets import service as tickets
from tenants import CurrentTenant, tenant_context

SLUG = "bench-submit"
FIELD = re.compile(r'name="(csrf_token|submission_token)" type="hidden" value="([^"]+)"')


def request(serial: int) -> tickets.RefundRequest:
    return tickets.RefundRequest(
        customer=tickets.CustomerDetails(
            name=f"Customer {serial}", phone=f"+86138{serial:08d}", email=f"c{serial}@example.test"
        ),
        reason="unused_balance",
        description="I cancelled my virtual number plan; please refund the unused balance.",
        amount="186.50",
    )


def form_fields(serial: int) -> dict[str, str]:
    return {
        "name": f"王芳{serial}",
        "phone": f"139 {serial:04d} {serial % 10000:04d}"[:13],
        "email": f"f{serial}@example.test",
        "account_ref": f"AC-{serial}",
        "reason": "unused_balance",
        "description": "我取消了虚拟号码套餐，请退还剩余话费。",
        "amount": "186.50",
        "consent": "y",
    }


class Counter:
    def __init__(self) -> None:
        self.statements = 0

    def __call__(self, *_args) -> None:
        self.statements += 1


def service_round(app, tenant: CurrentTenant, serials) -> None:
    for serial in serials:
        with app.app_context(), tenant_context(tenant):
            tickets.submit_refund_request(request(serial), nonce=uuid.uuid4().hex, ip="127.0.0.1")
            db.session.commit()


def filled_forms(app, serials) -> list:
    """A client per submission, holding the cookie and tokens of its own GET of the form,
    each from its own address: the per-address limits count as they would for customers
    (the limit on attempts, 60 an hour, is not the tenant's to raise)."""
    forms = []
    for serial in serials:
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = f"10.{serial >> 16 & 255}.{serial >> 8 & 255}.{serial & 255}"
        page = client.get(f"/t/{SLUG}/refund").get_data(as_text=True)
        forms.append((client, {**dict(FIELD.findall(page)), **form_fields(serial)}))
    return forms


def post_round(forms) -> None:
    for client, fields in forms:
        response = client.post(f"/t/{SLUG}/refund", data=fields)
        if response.status_code != 302:
            raise SystemExit(f"the form answered {response.status_code}, not a redirect to the receipt")


def measure(counter: Counter, count: int, run, *args) -> tuple[float, float]:
    """CPU ms and statements per submission of one round, ``run(*args)``."""
    counter.statements = 0
    started = time.process_time()
    run(*args)
    return (time.process_time() - started) / count * 1000, counter.statements / count


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/ledgerdesk_bench_submit"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/5")
    parser.add_argument("--chaining", choices=("inline", "background"), default="inline")
    parser.add_argument("--submits", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    reset_database(args.database_url.replace("postgresql+psycopg://", "postgresql://"))
    app = crm.create_app(
        {
            "SQLALCHEMY_DATABASE_URI": args.database_url,
            "REDIS_URL": args.redis_url,
            "AUDIT_CHAINING": args.chaining,
            "SECRET_KEY": "bench-submit-cost-secret-key-0123456789",
        }
    )
    counter = Counter()
    with app.app_context():
        flask_migrate.upgrade()
        created = provisioning.create_tenant(slug=SLUG, name="Bench", actor=Actor.operator("bench"))
        tenant = CurrentTenant.of(created)
        with tenant_context(tenant):  # the per-IP limit must not cut in
            db.session.execute(update(TenantSettings).values(form_submissions_per_hour=10_000_000))
        db.session.commit()
        event.listen(db.engine, "before_cursor_execute", counter)
    serial = 0

    def serials():
        nonlocal serial
        serial += args.submits
        return range(serial - args.submits + 1, serial + 1)

    service_round(app, tenant, serials())  # warm-up: caches, prepared statements
    post_round(filled_forms(app, serials()))
    service, post = [], []
    for _round in range(args.rounds):
        service.append(measure(counter, args.submits, service_round, app, tenant, serials()))
        post.append(measure(counter, args.submits, post_round, filled_forms(app, serials())))
    service_ms, post_ms = (statistics.median(ms for ms, _ in runs) for runs in (service, post))
    print(
        f"AUDIT_CHAINING={args.chaining}, median of {args.rounds} rounds of {args.submits}, "
        "CPU ms per submission:\n"
        f"  service (submit_refund_request + commit): {service_ms:6.2f} ms, "
        f"{statistics.median(n for _, n in service):.0f} statements\n"
        f"  whole POST through the test client:       {post_ms:6.2f} ms, "
        f"{statistics.median(n for _, n in post):.0f} statements\n"
        f"  the request around the submit:            {post_ms - service_ms:6.2f} ms\n"
        f"  rounds: service {', '.join(f'{ms:.2f}' for ms, _ in service)}; "
        f"post {', '.join(f'{ms:.2f}' for ms, _ in post)}"
    )


if __name__ == "__main__":
    main()
