"""How long a case file takes for a big case on PostgreSQL: a ticket with 200 thread
entries and 20 MB of attachments, in a tenant whose chain holds many other events.

The baseline, measured in the same run, is writing the same attachments' bytes into a
ZIP with nothing else: the part of the work no case file can avoid.

    .venv/bin/python bench/case_file.py \\
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/ledgerdesk_casebench] \\
        [--chain-events 100000] [--rounds 3]
"""

import argparse
import os
import random
import tempfile
import time
import zipfile
from pathlib import Path

import flask_migrate
import psycopg
from sqlalchemy import select
from sqlalchemy.engine import make_url

import crm
from crm.audit.service import Actor, record
from crm.auth.models import User
from crm.auth.service import create_user
from crm.exports.case_file import write_case_file
from crm.extensions import db
from crm.files.models import Attachment
from crm.files.storage import blob_path
from crm.provisioning import service as provisioning
from crm.tickets import service as tickets
from tenants import CurrentTenant, tenant_context

PNG_HEAD = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489")


def reset(url: str) -> None:
    parsed = make_url(url)
    admin = parsed.set(database="postgres").render_as_string(hide_password=False).replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{parsed.database}"')


def build(app, chain_events: int) -> tuple[CurrentTenant, int]:
    with app.app_context():
        tenant = CurrentTenant.of(
            provisioning.create_tenant(actor=Actor.operator("bench"), slug="casebench", name="Case Bench")
        )
        db.session.commit()
        with tenant_context(tenant):
            create_user(
                email="agent@casebench.test",
                role="agent",
                password="bench-password-Ledger-1",
                display_name="Agent",
                actor=Actor.operator("bench"),
            )
            db.session.commit()
            for start in range(0, chain_events, 5000):
                for n in range(start, min(start + 5000, chain_events)):
                    record("bench.other", "widget", n, actor=Actor.system(), data={"n": n})
                db.session.commit()
            request = tickets.RefundRequest(
                customer=tickets.CustomerDetails(
                    name="王小明", phone="13800138000", email="xm@example.test", locale="zh_CN"
                ),
                reason="unused_balance",
                description="请退还剩余余额。",
            )
            ticket = tickets.submit_refund_request(request, nonce="bench-1", ip=None).ticket
            db.session.commit()
            user = db.session.scalars(select(User)).one()
            rng = random.Random(7)
            for n in range(199):
                uploads = []
                if n % 10 == 0:  # 20 files of 1 MiB
                    uploads = [tickets.Upload(f"scan-{n}.png", PNG_HEAD + rng.randbytes(1 << 20))]
                tickets.add_note(
                    ticket, f"Note {n}: checked the account.", user=user, ip=None, uploads=uploads
                )
                db.session.commit()
            return tenant, ticket.number


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/ledgerdesk_casebench"
    )
    parser.add_argument("--chain-events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    reset(args.database_url)
    uploads = tempfile.mkdtemp(prefix="casebench-")
    app = crm.create_app(
        {"SQLALCHEMY_DATABASE_URI": args.database_url, "UPLOAD_FOLDER": uploads, "REDIS_URL": None}
    )
    with app.app_context():
        flask_migrate.upgrade()
    began = time.perf_counter()
    tenant, number = build(app, args.chain_events)
    print(f"built: ticket {number} with 200 entries and 20 files, chain of {args.chain_events:,}+ events "
          f"in {time.perf_counter() - began:.0f} s")  # fmt: skip
    with app.app_context(), tenant_context(tenant), tempfile.TemporaryDirectory() as out:
        ticket = tickets.ticket_by_number(number)
        blobs = [
            blob_path(tenant.id, sha) for sha in db.session.scalars(select(Attachment.sha256).distinct())
        ]
        size = sum(os.path.getsize(blob) for blob in blobs)
        for round_ in range(args.rounds):
            began = time.perf_counter()
            with zipfile.ZipFile(Path(out) / "bare.zip", "w") as archive:
                for blob in blobs:
                    archive.write(blob, blob.name)
            bare = time.perf_counter() - began
            began = time.perf_counter()
            written = write_case_file(ticket, Path(out) / "case.zip", actor=Actor.operator("bench"))
            db.session.commit()
            seconds = time.perf_counter() - began
            print(
                f"round {round_ + 1}: case file {seconds:.3f} s ({written.events} events,"
                f" {written.files} files, chain {written.checkpoint.tree_size:,});"
                f" bare ZIP of the {size / 2**20:.0f} MiB of attachments {bare:.3f} s;"
                f" case file / bare {seconds / bare:.1f}"
            )


if __name__ == "__main__":
    main()
