"""How long a whole-tenant export takes on PostgreSQL, against a bare dump of the same
tickets measured in the same run.

Seed first (one tenant, perf-00, with 100,000 tickets):
    .venv/bin/python bench/seed.py \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/ledgerdesk_perf \\
        --tenants 1 --tickets 100000 --big-tenant-tickets 100000 --reset
then:
    .venv/bin/python bench/tenant_export.py [--database-url …/ledgerdesk_perf] [--tenant perf-00]

The baseline reads the tenant's tickets and their thread entries and writes them as
JSON lines, nothing else: what any export of the cases must at least do.
"""

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from sqlalchemy import select

import crm
from crm.audit.service import Actor
from crm.exports.tenant_export import write_tenant_export
from crm.extensions import db
from crm.tickets.models import ThreadEntry, Ticket
from tenants import CurrentTenant, Tenant, tenant_context


def bare_dump(out: Path, tenant_id: int) -> int:
    """Every ticket and thread entry of the tenant, as JSON lines."""
    count = 0
    with out.open("w") as stream:
        for model in (Ticket, ThreadEntry):
            columns = [column for column in model.__table__.c]
            result = db.session.connection().execute(
                select(*columns)
                .where(model.tenant_id == tenant_id)
                .order_by(columns[0])
                .execution_options(yield_per=5000)
            )
            for row in result:
                stream.write(json.dumps(dict(row._mapping), default=str, ensure_ascii=False) + "\n")
                count += 1
            result.close()
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/ledgerdesk_perf"
    )
    parser.add_argument("--tenant", default="perf-00")
    args = parser.parse_args()
    app = crm.create_app({"SQLALCHEMY_DATABASE_URI": args.database_url, "REDIS_URL": None})
    with app.app_context(), tempfile.TemporaryDirectory() as folder:
        tenant = db.session.scalars(select(Tenant).where(Tenant.slug == args.tenant)).one()
        with tenant_context(CurrentTenant.of(tenant)):
            began = time.perf_counter()
            rows = bare_dump(Path(folder) / "bare.jsonl", tenant.id)
            bare = time.perf_counter() - began
            print(f"baseline, bare dump of tickets and entries: {rows:,} rows in {bare:.1f} s")
            rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            began = time.perf_counter()
            written = write_tenant_export(Path(folder) / "export", actor=Actor.operator("bench"))
            db.session.commit()
            seconds = time.perf_counter() - began
            growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
            print(
                f"tenant export: {written.cases:,} cases, {written.events:,} events, {written.files} files"
                f" in {seconds:.1f} s ({seconds / bare:.1f}x the bare dump); peak RSS growth {growth:.0f} MiB"
            )


if __name__ == "__main__":
    main()
