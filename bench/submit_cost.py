"""What one hosted-form submission costs in-process: ``submit_refund_request`` and its
commit (ticket, customer, message, tracking link, receipt email, audit events and, since
the SLA, the ticket's clocks), without HTTP in front.

Run it from two checkouts against the same server to see what a change costs, e.g.
before and after the SLA clocks:

    git worktree add /tmp/before <commit>
    PYTHONPATH=/tmp/before .venv/bin/python /tmp/before/bench/submit_cost.py   # if it has the script
    .venv/bin/python bench/submit_cost.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/ledgerdesk_bench_submit

The database is dropped and recreated (its name must contain "bench"). Prints the
median of ``--rounds`` rounds of ``--submits`` submissions, in ms per submission, with
the number of SQL statements each one ran.
"""

import argparse
import statistics
import time
import uuid

import flask_migrate
from seed import reset_database  # bench/seed.py: drops only a 'bench' or 'perf' database
from sqlalchemy import event

import crm
from crm.audit.service import Actor
from crm.extensions import db
from crm.provisioning import service as provisioning
from crm.tickets import service as tickets
from tenants import CurrentTenant, tenant_context


def request(serial: int) -> tickets.RefundRequest:
    return tickets.RefundRequest(
        customer=tickets.CustomerDetails(
            name=f"Customer {serial}", phone=f"+86138{serial:08d}", email=f"c{serial}@example.test"
        ),
        reason="unused_balance",
        description="I cancelled my virtual number plan; please refund the unused balance.",
        amount="186.50",
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/ledgerdesk_bench_submit"
    )
    parser.add_argument("--submits", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    reset_database(args.database_url.replace("postgresql+psycopg://", "postgresql://"))
    app = crm.create_app({"SQLALCHEMY_DATABASE_URI": args.database_url})
    statements = 0

    def count(*_args) -> None:
        nonlocal statements
        statements += 1

    with app.app_context():
        flask_migrate.upgrade()
        created = provisioning.create_tenant(slug="bench-submit", name="Bench", actor=Actor.operator("bench"))
        db.session.commit()
        tenant = CurrentTenant.of(created)
        event.listen(db.engine, "before_cursor_execute", count)
    serial, per_round = 0, []
    for _round in range(args.rounds):
        started, statements = time.perf_counter(), 0
        for _ in range(args.submits):
            serial += 1
            with app.app_context(), tenant_context(tenant):
                tickets.submit_refund_request(request(serial), nonce=uuid.uuid4().hex, ip="127.0.0.1")
                db.session.commit()
        per_round.append((time.perf_counter() - started) / args.submits)
    print(
        f"{statistics.median(per_round) * 1000:.2f} ms per submission (median of {args.rounds} rounds of "
        f"{args.submits}; rounds {', '.join(f'{r * 1000:.2f}' for r in per_round)}), "
        f"{statements / args.submits:.0f} statements each"
    )


if __name__ == "__main__":
    main()
