"""The audit chain: appended with its change, verifiable, tamper-evident, unforked."""

import hashlib
import json
import sqlite3
import threading
import time
from datetime import UTC, timedelta

import pytest
import sqlalchemy
import time_machine
from rq import SimpleWorker
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import DBAPIError

from crm import create_app, jobs
from crm.audit import service as audit_service
from crm.audit.models import AuditEvent
from crm.audit.service import Actor, record, verify_chain
from crm.auth import service as auth
from crm.columns import utcnow
from crm.config import ConfigError, from_environment
from crm.extensions import db
from tenants import TenantContextError, tenant_context
from tests.conftest import POSTGRES_URL, acting_for, requires_postgres, requires_redis

# A new tenant's chain: its creation, then version 1 of its default calendar, SLA policy
# and deadline rules.
CREATED = [
    "tenant.created",
    "calendar.version_created",
    "sla_policy.version_created",
    "deadlines.version_created",
]


def chain_report(app, tenant):
    with acting_for(app, tenant):
        return verify_chain(batch=3)  # a tiny batch exercises the streaming across batches


def test_chain_verifies_after_a_realistic_sequence_of_actions(app, runner, busy_tenant):
    report = chain_report(app, busy_tenant)
    # The tenant's creation with its three default versions, two users, two sign-ins, a
    # failed one, a role change and a language change.
    assert report.ok and report.count == 11
    result = runner.invoke(args=["audit", "verify", "--tenant", busy_tenant.slug])
    assert result.exit_code == 0
    assert f"ok: 11 events, head {report.head_hash}" in result.output


def test_event_is_written_with_its_change_and_vanishes_with_its_rollback(app, make_tenant):
    tenant = make_tenant()
    with acting_for(app, tenant) as session:
        auth.create_user(
            email="gone@example.test", role="agent", password="long enough pw", actor=Actor.system()
        )
        session.rollback()
        assert session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)).all() == CREATED
        auth.create_user(
            email="kept@example.test", role="agent", password="long enough pw", actor=Actor.system()
        )
        session.commit()
        assert session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)).all() == [
            *CREATED,
            "user.created",
        ]


def test_audit_data_refuses_floats_and_events_need_a_tenant(app, make_tenant):
    with acting_for(app, make_tenant()), pytest.raises(TypeError, match="floats"):
        record("x.y", "thing", 1, actor=Actor.system(), data={"amount": 1.5})
    with acting_for(app, None), pytest.raises(TenantContextError):
        record("x.y", "thing", 1, actor=Actor.system())


def _tamper(app, statements: list[tuple[str, tuple | dict]]) -> None:
    """Rewrite the audit tables behind the app's back, as someone with file or superuser
    access could: SQLite by opening the file itself, PostgreSQL with triggers disabled.
    Parameters are ``(value,)`` for one ``?`` or a dict for ``:name`` placeholders."""
    url = app.config["OWNER_DATABASE_URI"]
    if url.startswith("sqlite"):
        connection = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        triggers = connection.execute(
            "SELECT name, sql FROM sqlite_master"
            " WHERE type = 'trigger' AND tbl_name IN ('audit_events', 'audit_heads', 'audit_checkpoints')"
        ).fetchall()
        connection.execute("BEGIN")
        for name, _ in triggers:
            connection.execute(f"DROP TRIGGER {name}")
        for sql, params in statements:
            connection.execute(sql, params)
        for _, sql in triggers:
            connection.execute(sql)
        connection.execute("COMMIT")
        connection.close()
        return
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("SET LOCAL session_replication_role = replica"))
        for sql, params in statements:
            if isinstance(params, dict):
                connection.execute(text(sql), params)
            else:
                connection.execute(text(sql.replace("?", ":p")), {"p": params[0]} if params else {})
    engine.dispose()


CHANGES = {
    "occurred_at": "occurred_at = '2020-01-01 00:00:00'",
    "actor_kind": "actor_kind = 'system'",
    "actor_id": "actor_id = '999'",
    "actor_label": "actor_label = 'someone else'",
    "ip": "ip = '10.9.9.9'",
    "action": "action = 'user.deleted'",
    "subject_type": "subject_type = 'ticket'",
    "subject_id": "subject_id = '424242'",
    "data": 'data = \'{{"role": "admin"}}\'',
    "prev_hash": f"prev_hash = '{'a' * 64}'",
    "hash": f"hash = '{'b' * 64}'",
    "seq": "seq = seq + 100",
    "tenant_id": "tenant_id = {other_tenant}",  # moved to a tenant whose chain is shorter
}


@pytest.mark.parametrize("column", sorted(CHANGES))
def test_changing_any_column_of_an_event_is_detected(app, runner, make_tenant, busy_tenant, column):
    change = CHANGES[column].format(other_tenant=make_tenant().id)
    _tamper(app, [(f"UPDATE audit_events SET {change} WHERE tenant_id = ? AND seq = 7", (busy_tenant.id,))])
    report = chain_report(app, busy_tenant)
    assert report.first_bad_seq == 7, report
    result = runner.invoke(args=["audit", "verify", "--tenant", busy_tenant.slug])
    assert result.exit_code == 1
    assert "FAILED at seq 7" in result.output


def test_a_deleted_event_is_detected(app, busy_tenant):
    _tamper(app, [("DELETE FROM audit_events WHERE tenant_id = ? AND seq = 8", (busy_tenant.id,))])
    assert chain_report(app, busy_tenant).first_bad_seq == 8


def test_a_deleted_last_event_is_detected_against_the_chain_head(app, busy_tenant):
    _tamper(app, [("DELETE FROM audit_events WHERE tenant_id = ? AND seq = 11", (busy_tenant.id,))])
    report = chain_report(app, busy_tenant)
    assert report.first_bad_seq == 11 and report.count == 10


def test_two_swapped_events_are_detected(app, busy_tenant):
    swap = "UPDATE audit_events SET seq = {to} WHERE tenant_id = ? AND seq = {frm}"
    _tamper(
        app,
        [
            (swap.format(frm=6, to=-1), (busy_tenant.id,)),
            (swap.format(frm=7, to=6), (busy_tenant.id,)),
            (swap.format(frm=-1, to=7), (busy_tenant.id,)),
        ],
    )
    assert chain_report(app, busy_tenant).first_bad_seq == 6


def test_the_database_refuses_to_rewrite_events(app, busy_tenant):
    statements = ["UPDATE audit_events SET action = 'x'", "DELETE FROM audit_events"]
    if POSTGRES_URL:
        statements.append("TRUNCATE audit_events")
    for statement in statements:
        with acting_for(app, busy_tenant) as session:
            # The trigger refuses it; connected as the application role, its grants first.
            with pytest.raises(DBAPIError, match=r"append-only|permission denied"):
                session.execute(text(f"{statement}"))
            session.rollback()
    assert chain_report(app, busy_tenant).ok


def independent_verify(app, tenant_id: int) -> tuple[int, str]:
    """A verifier written from docs/audit-format.md alone: raw rows, hashlib and json
    (read as the owner would hand them to an inspector)."""
    engine = create_engine(app.config["OWNER_DATABASE_URI"])
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT tenant_id, seq, occurred_at, actor_kind, actor_id, actor_label, ip, action,"
                " subject_type, subject_id, CAST(data AS TEXT) AS data, prev_hash, hash, chained_at"
                " FROM audit_events"
                " WHERE tenant_id = :t ORDER BY seq"
            ),
            {"t": tenant_id},
        ).all()
    engine.dispose()
    prev = "0" * 64

    def canonical(value) -> bytes:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def instant(value) -> str:
        if isinstance(value, str):  # SQLite hands back the stored text
            value = value.replace(" ", "T")
            return value + ("" if "." in value else ".000000") + "Z"
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    last_chained = None
    for row in rows:
        data = json.loads(row.data)
        assert isinstance(data, dict) and canonical(data) == row.data.encode("utf-8"), f"seq {row.seq}: data"
        body = {
            "tenant_id": row.tenant_id,
            "seq": row.seq,
            "occurred_at": instant(row.occurred_at),
            "actor": {"kind": row.actor_kind, "id": row.actor_id, "label": row.actor_label},
            "ip": row.ip,
            "action": row.action,
            "subject": {"type": row.subject_type, "id": row.subject_id},
            "data": data,
            "prev_hash": row.prev_hash,
        }
        if row.chained_at is not None:
            body["chained_at"] = instant(row.chained_at)
            assert last_chained is None or body["chained_at"] >= last_chained, f"seq {row.seq}: chained_at"
            last_chained = body["chained_at"]
        else:
            assert last_chained is None, f"seq {row.seq}: chained_at missing"
        digest = hashlib.sha256(prev.encode("ascii") + canonical(body)).hexdigest()
        assert row.prev_hash == prev and row.hash == digest, f"seq {row.seq}"
        prev = digest
    return len(rows), prev


def test_the_documented_format_verifies_with_independent_code(app, busy_tenant):
    report = chain_report(app, busy_tenant)
    assert independent_verify(app, busy_tenant.id) == (report.count, report.head_hash)


def test_audit_page_filters_and_pages_through_events(app, client, signed_in):
    tenant, admin = signed_in("admin")
    with acting_for(app, tenant) as session:
        for n in range(60):
            record("test.bulk", "widget", n, actor=Actor.system(), data={"n": n})
        session.commit()
    page = client.get(f"/t/{tenant.slug}/audit?action=test.")
    assert page.status_code == 200
    assert page.text.count("test.bulk") == 50 and "auth.login" not in page.text
    assert "Older events" in page.text
    older = client.get(f"/t/{tenant.slug}/audit?action=test.&before=14")
    assert older.text.count("test.bulk") == 7  # seq 7..13, after the tenant's 4, its user and login
    by_subject = client.get(f"/t/{tenant.slug}/audit?subject_type=widget&subject_id=7")
    assert by_subject.text.count("test.bulk") == 1
    by_actor = client.get(f"/t/{tenant.slug}/audit?actor={admin.email}")
    assert "auth.login" in by_actor.text and "test.bulk" not in by_actor.text
    assert client.get(f"/t/{tenant.slug}/audit?since=not-a-date").status_code == 400
    assert client.get(f"/t/{tenant.slug}/audit?before=-3").status_code == 400


@requires_postgres
def test_eight_concurrent_writers_produce_one_gapless_unforked_chain(app, make_tenant):
    tenant = make_tenant()
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def writer(number: int) -> None:
        try:
            with app.app_context(), tenant_context(tenant):
                start.wait()
                for i in range(200):
                    record("load.append", "writer", number, actor=Actor.system(), data={"i": i})
                    db.session.commit()
        except BaseException as error:  # reported below, not lost in the thread
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with acting_for(app, tenant) as session:
        seqs = session.scalars(select(AuditEvent.seq).order_by(AuditEvent.seq)).all()
    total = len(CREATED) + 8 * 200  # the tenant's creation, then 8 writers x 200
    assert seqs == list(range(1, total + 1))
    report = chain_report(app, tenant)
    assert report.ok and report.count == total


def test_a_recorded_event_alone_is_dropped_by_a_rollback(app, make_tenant):
    tenant = make_tenant()
    with acting_for(app, tenant) as session:
        record("test.dropped", "thing", 1, actor=Actor.system())
        session.rollback()
        record("test.kept", "thing", 2, actor=Actor.system())
        session.commit()
        assert session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)).all() == [
            *CREATED,
            "test.kept",
        ]


def test_events_left_waiting_by_a_failed_chaining_are_chained_later(app, runner, make_tenant):
    tenant = make_tenant()
    with acting_for(app, tenant) as session:
        # As if the process died between the commit and the chaining.
        listener = audit_service._chain_after_commit
        sqlalchemy.event.remove(type(session()), "after_commit", listener)
        try:
            record("test.stranded", "thing", 1, actor=Actor.system())
            session.commit()
        finally:
            sqlalchemy.event.listen(type(session()), "after_commit", listener)
        assert audit_service.waiting_count() == 1
        assert verify_chain().count == len(CREATED)  # the chain itself is intact, just shorter
    result = runner.invoke(args=["audit", "chain", "--tenant", tenant.slug])
    assert result.exit_code == 0 and "chained 1 waiting events" in result.output
    with acting_for(app, tenant) as session:
        assert audit_service.waiting_count() == 0
        assert session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)).all() == [
            *CREATED,
            "test.stranded",
        ]
        record("test.next", "thing", 2, actor=Actor.system())
        session.commit()
        assert verify_chain().count == len(CREATED) + 2


def strand(app, tenant, action: str, minutes_ago: float) -> None:
    """An event committed to the inbox by a process that died before chaining it."""
    with acting_for(app, tenant) as session:
        listener = audit_service._chain_after_commit
        sqlalchemy.event.remove(type(session()), "after_commit", listener)
        try:
            with time_machine.travel(utcnow() - timedelta(minutes=minutes_ago)):
                record(action, "thing", 1, actor=Actor.system())
            session.commit()
        finally:
            sqlalchemy.event.listen(type(session()), "after_commit", listener)


def test_stragglers_of_every_tenant_are_chained_and_fresh_events_left_to_their_writer(
    app, runner, make_tenant
):
    first, second, busy = make_tenant(), make_tenant(), make_tenant()
    strand(app, first, "test.stranded", minutes_ago=5)
    strand(app, second, "test.stranded", minutes_ago=2)
    strand(app, busy, "test.just_committed", minutes_ago=0)  # its writer is chaining it now
    result = runner.invoke(args=["audit", "chain-stragglers"])
    assert result.exit_code == 0, result.output
    assert "chained 2 waiting events of 2 tenants" in result.output
    for tenant, waiting in ((first, 0), (second, 0), (busy, 1)):
        with acting_for(app, tenant) as session:
            assert audit_service.waiting_count() == waiting
            actions = session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)).all()
            assert actions == ([*CREATED, "test.stranded"] if waiting == 0 else CREATED)
            assert verify_chain().ok
    assert "chained 0 waiting events of 0 tenants" in runner.invoke(args=["audit", "chain-stragglers"]).output


@requires_redis
def test_the_worker_chains_stragglers_every_minute(rq_app, make_tenant):
    """Booked on worker start, the job chains what waited too long and books the next
    minute under one id, however often it is booked."""
    tenant = make_tenant()
    strand(rq_app, tenant, "test.stranded", minutes_ago=3)
    with rq_app.app_context():
        booked = {
            audit_service.schedule_chain_stragglers(now=utcnow() - timedelta(minutes=1)) for _ in range(2)
        }
        registry = jobs.queue().scheduled_job_registry
        assert registry.get_job_ids() == list(booked)
        SimpleWorker([jobs.queue()], connection=jobs.redis_connection()).work(burst=True, with_scheduler=True)
        [next_job] = registry.get_job_ids()
        assert next_job.startswith(audit_service.CHAIN_JOB_PREFIX) and next_job not in booked
    with acting_for(rq_app, tenant) as session:
        assert audit_service.waiting_count() == 0
        assert session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)).all() == [
            *CREATED,
            "test.stranded",
        ]


def test_background_chaining_chains_soon_after_the_commit(app, make_tenant):
    background = create_app(
        {
            **{
                key: app.config[key] for key in ("TESTING", "SQLALCHEMY_DATABASE_URI", "PASSWORD_HASH_METHOD")
            },
            "AUDIT_CHAINING": "background",
        }
    )
    tenant = make_tenant()
    with acting_for(background, tenant) as session:
        for n in range(20):
            record("test.background", "thing", n, actor=Actor.system())
            session.commit()
    deadline = time.monotonic() + 10
    with acting_for(background, tenant):
        while audit_service.waiting_count() and time.monotonic() < deadline:
            time.sleep(0.02)
        report = verify_chain()
    assert report.ok and report.count == len(CREATED) + 20
    audit_service.BACKGROUND.drain()  # the chainer's pass ends, and returns its connection
    with background.app_context():
        db.engine.dispose()


def test_unknown_chaining_mode_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="AUDIT_CHAINING"):
        from_environment(tmp_path, {"AUDIT_CHAINING": "sometimes"})
