"""Instructions the app executes per hosted-form post, counted by valgrind's callgrind:
the same for the same code and inputs whatever else the machine is doing, where CPU
time on a shared machine moves by 10-30% from one run to the next.

The posts go through the Flask test client (as in ``submit_cost.py``), against PostgreSQL
and Redis, with the audit chain written inline so every instruction is the request's.
Two runs under callgrind post ``--few`` and ``--many`` forms after the same setup (app,
tenant, the same number of form GETs); their difference divided by ``many - few`` is
the cost of one post, setup cancelled out. The database's own work is not counted.

    .venv/bin/python bench/post_instructions.py [--app-root DIR]

``--app-root`` measures another checkout (a ``git worktree`` of the commit before a
change) with this script. Needs ``valgrind``; about two minutes per run on two cores.
"""

import argparse
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/ledgerdesk_bench_instructions"
GETS = 80  # forms fetched in every run, so setup is the same whatever is posted
WARM = 10  # posted before the counted ones in every run


def inner(count: int, url: str, redis_url: str) -> None:
    """Under callgrind: set up, then post ``WARM + count`` forms."""
    sys.path.insert(0, str(ROOT / "bench"))
    import submit_cost  # a sibling script, not a package
    from sqlalchemy import update

    import crm
    from crm.audit.service import Actor
    from crm.extensions import db
    from crm.provisioning import service as provisioning
    from crm.provisioning.models import TenantSettings
    from tenants import CurrentTenant, tenant_context

    app = crm.create_app(
        {
            "SQLALCHEMY_DATABASE_URI": url,
            "REDIS_URL": redis_url,
            "RATELIMIT_STORAGE_URI": redis_url,  # the limits count in Redis, as deployed
            "AUDIT_CHAINING": "inline",
            "SECRET_KEY": "bench-post-instructions-secret-key-0123",
        }
    )
    submit_cost.SLUG = f"instr-{uuid.uuid4().hex[:8]}"  # a fresh tenant (and counter) per run
    with app.app_context():
        created = provisioning.create_tenant(
            slug=submit_cost.SLUG, name="Bench", actor=Actor.operator("bench")
        )
        with tenant_context(CurrentTenant.of(created)):  # the per-IP limit must not cut in
            db.session.execute(update(TenantSettings).values(form_submissions_per_hour=10_000_000))
        db.session.commit()
    forms = submit_cost.filled_forms(app, range(1, GETS + 1))
    submit_cost.post_round(forms[: WARM + count])


def counted(app_root: Path, count: int, url: str, redis_url: str) -> int:
    """Instructions of one run under callgrind that posts ``count`` counted forms."""
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        str(Path(__file__).resolve()),
        "--inner",
        str(count),
        "--database-url",
        url,
        "--redis-url",
        redis_url,
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(app_root)}
    output = subprocess.run(command, cwd=app_root, env=env, capture_output=True, text=True)
    found = re.search(r"Collected : (\d+)", output.stderr)
    if output.returncode != 0 or found is None:
        sys.exit(f"the run under callgrind failed:\n{output.stderr[-3000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/5")
    parser.add_argument("--app-root", type=Path, default=ROOT)
    parser.add_argument("--few", type=int, default=5)
    parser.add_argument("--many", type=int, default=45)
    parser.add_argument("--inner", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner is not None:
        inner(args.inner, args.database_url, args.redis_url)
        return
    if args.many - args.few <= 0 or WARM + args.many > GETS:
        sys.exit(f"need few < many <= {GETS - WARM}")
    from seed import reset_database  # bench/seed.py: drops only a 'bench' or 'perf' database

    reset_database(args.database_url.replace("postgresql+psycopg://", "postgresql://"))
    subprocess.run(
        [str(Path(sys.executable).parent / "flask"), "--app", "wsgi", "db", "upgrade"],
        cwd=args.app_root,
        env={**os.environ, "DATABASE_URL": args.database_url, "PYTHONPATH": str(args.app_root)},
        check=True,
        capture_output=True,
    )
    few = counted(args.app_root, args.few, args.database_url, args.redis_url)
    many = counted(args.app_root, args.many, args.database_url, args.redis_url)
    per_post = (many - few) / (args.many - args.few)
    print(
        f"{args.app_root.resolve()}: {per_post / 1e6:.2f}M instructions per form post "
        f"({few:,} with {args.few} posts, {many:,} with {args.many})"
    )


if __name__ == "__main__":
    main()
