"""What an outside expert's drill found `audit verify` accepting: a deleted chain head, a
head moved back, events stored after the head. Each must fail, naming what is wrong; and
the database itself refuses to move a head back or delete it."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DatabaseError

from crm.audit import service as audit_service
from crm.audit.chain import stored_event_hash
from crm.audit.models import AuditEvent
from crm.extensions import db
from tests.conftest import acting_for
from tests.test_audit import _tamper, chain_report


def verify(runner, tenant):
    return runner.invoke(args=["audit", "verify", "--tenant", tenant.slug])


def head_seq(app, tenant) -> int:
    with acting_for(app, tenant):
        return db.session.execute(
            text("SELECT seq FROM audit_heads WHERE tenant_id = :t"), {"t": tenant.id}
        ).scalar()


def test_a_deleted_chain_head_fails_verification(app, runner, busy_tenant):
    stored = head_seq(app, busy_tenant)
    _tamper(app, [("DELETE FROM audit_heads WHERE tenant_id = ?", (busy_tenant.id,))])
    result = verify(runner, busy_tenant)
    assert result.exit_code == 1
    assert f"the chain head is missing but {stored} events are stored" in result.output


def test_a_head_moved_back_fails_verification(app, runner, busy_tenant):
    stored = head_seq(app, busy_tenant)
    with acting_for(app, busy_tenant):
        earlier = db.session.execute(
            text("SELECT hash FROM audit_events WHERE tenant_id = :t AND seq = :s"),
            {"t": busy_tenant.id, "s": stored - 10},
        ).scalar()
    # A consistent cut: the head names an earlier event exactly, as a forger would leave it.
    _tamper(
        app,
        [
            (
                f"UPDATE audit_heads SET seq = {stored - 10}, hash = '{earlier}' WHERE tenant_id = ?",
                (busy_tenant.id,),
            )
        ],
    )
    result = verify(runner, busy_tenant)
    assert result.exit_code == 1
    assert (
        f"FAILED at seq {stored - 9}: 10 events are stored after the chain head (head records {stored - 10})"
        in (result.output)
    )


def test_the_report_names_the_events_after_the_head(app, busy_tenant):
    stored = head_seq(app, busy_tenant)
    _tamper(app, [(f"UPDATE audit_heads SET seq = {stored - 1} WHERE tenant_id = ?", (busy_tenant.id,))])
    report = chain_report(app, busy_tenant)
    assert not report.ok
    assert report.first_bad_seq == stored
    assert report.problem == f"1 events are stored after the chain head (head records {stored - 1})"


def test_a_chain_that_grows_while_it_is_verified_is_not_tampering(app, runner, busy_tenant, make_user):
    """The head read first may be behind events a writer chains before the walk reaches
    them: the head is read again, and covers them."""
    before = verify(runner, busy_tenant)
    assert before.exit_code == 0
    make_user(busy_tenant, "agent")  # appends while nothing is tampered with
    after = verify(runner, busy_tenant)
    assert after.exit_code == 0, after.output
    assert int(after.output.split()[1]) > int(before.output.split()[1])


def test_an_untouched_chain_still_verifies_with_its_head(app, runner, busy_tenant):
    result = verify(runner, busy_tenant)
    assert result.exit_code == 0
    assert result.output.startswith(f"ok: {head_seq(app, busy_tenant)} events")


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM audit_heads WHERE tenant_id = :t",
        "UPDATE audit_heads SET seq = seq - 1 WHERE tenant_id = :t",
        "UPDATE audit_heads SET tenant_id = tenant_id + 100000 WHERE tenant_id = :t",
    ],
)
def test_the_database_refuses_to_cut_or_move_a_chain_head(app, busy_tenant, statement):
    with acting_for(app, busy_tenant), pytest.raises(DatabaseError, match="only move forward"):
        try:
            db.session.execute(text(statement), {"t": busy_tenant.id})
        finally:
            db.session.rollback()


def _rewrite_last_data(app, tenant, data_text: str) -> int:
    """Give the tenant's last event another ``data`` text and the hash that text gives,
    and move the head's hash with it: a forger's rewrite that every hash agrees with."""
    with acting_for(app, tenant):
        row = db.session.execute(
            select(*audit_service.VERIFY_COLUMNS)
            .where(AuditEvent.tenant_id == tenant.id)
            .order_by(AuditEvent.seq.desc())
            .limit(1)
        ).one()
    *body, _ = row
    body[10] = data_text
    forged = stored_event_hash(*body)
    quoted = data_text.replace("'", "''")
    _tamper(
        app,
        [
            (
                f"UPDATE audit_events SET data = '{quoted}', hash = '{forged}'"
                f" WHERE tenant_id = ? AND seq = {body[1]}",
                (tenant.id,),
            ),
            (f"UPDATE audit_heads SET hash = '{forged}' WHERE tenant_id = ?", (tenant.id,)),
        ],
    )
    return body[1]


@pytest.mark.parametrize(
    "data_text",
    [
        '{"role": "agent"}',  # re-encoded: a space after the colon
        '{"role":"agent","role":"admin"}',  # a duplicate key: parsers disagree on its value
        '{"role":"\\u0061gent"}',  # an escape canonical JSON does not write
        '["role","agent"]',  # not an object
    ],
)
def test_data_that_is_not_canonical_fails_verification_even_when_hashed(app, runner, busy_tenant, data_text):
    """The hash covers the stored text byte for byte; the text must also be the one way of
    writing its object, so that no two readers can take different data from one event."""
    seq = _rewrite_last_data(app, busy_tenant, data_text)
    report = chain_report(app, busy_tenant)
    assert (report.first_bad_seq, report.problem) == (seq, "data is not a canonical JSON object")
    result = verify(runner, busy_tenant)
    assert result.exit_code == 1
    assert f"FAILED at seq {seq}: data is not a canonical JSON object" in result.output


def test_canonical_data_rehashed_by_a_forger_still_verifies_without_a_checkpoint(app, busy_tenant):
    """The control for the test above: the same rewrite with canonical text passes the
    chain alone, so what failed there was the canonical check (signed checkpoints are
    what catch this rewrite)."""
    _rewrite_last_data(app, busy_tenant, '{"role":"admin"}')
    assert chain_report(app, busy_tenant).ok


# --- the order of chaining ------------------------------------------------------------------


def _rewrite_chain(app, tenant, change) -> None:
    """Rewrite the tenant's whole chain consistently, as a forger with the database would:
    ``change(seq, body)`` edits an event's hashed columns, then every hash and link is
    recomputed and the head moved to the new last hash."""
    with acting_for(app, tenant):
        rows = db.session.execute(
            select(*audit_service.VERIFY_COLUMNS)
            .where(AuditEvent.tenant_id == tenant.id)
            .order_by(AuditEvent.seq)
        ).all()
    sqlite = app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite")

    def stored_form(moment):
        if moment is None:
            return None
        if sqlite:  # as SQLite keeps it: naive UTC text
            return moment.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()

    statements, prev_hash = [], "0" * 64
    for row in rows:
        *body, _ = row
        body[11] = prev_hash
        change(body[1], body)
        prev_hash = stored_event_hash(*body)
        statements.append(
            (
                "UPDATE audit_events SET occurred_at = :occurred_at, chained_at = :chained_at, data = :data,"
                " prev_hash = :prev_hash, hash = :hash WHERE tenant_id = :tenant AND seq = :seq",
                {
                    "occurred_at": stored_form(body[2]),
                    "chained_at": stored_form(body[12]),
                    "data": body[10],
                    "prev_hash": body[11],
                    "hash": prev_hash,
                    "tenant": tenant.id,
                    "seq": body[1],
                },
            )
        )
    statements.append(
        (
            "UPDATE audit_heads SET hash = :hash WHERE tenant_id = :tenant",
            {"hash": prev_hash, "tenant": tenant.id},
        )
    )
    _tamper(app, statements)


def test_events_record_when_they_were_chained_in_order(app, busy_tenant):
    with acting_for(app, busy_tenant):
        events = db.session.scalars(select(AuditEvent).order_by(AuditEvent.seq)).all()
    times = [event.chained_at for event in events]
    assert None not in times and times == sorted(times)
    assert all(event.chained_at >= event.occurred_at for event in events)


def test_events_chained_before_chaining_times_existed_still_verify(app, busy_tenant):
    """Chains begun before ``chained_at``: their first events were hashed without it."""

    def forget_early_times(seq, body):
        if seq <= 3:
            body[12] = None

    _rewrite_chain(app, busy_tenant, forget_early_times)
    assert chain_report(app, busy_tenant).ok


def test_a_backdated_event_fails_on_its_chaining_time(app, runner, busy_tenant):
    """A forger appends an event dated weeks ago and rehashes everything: the event's
    chaining time, earlier than its predecessor's, gives it away."""
    last = head_seq(app, busy_tenant)
    backdated = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

    def backdate(seq, body):
        if seq == last:
            body[2] = body[12] = backdated

    _rewrite_chain(app, busy_tenant, backdate)
    report = chain_report(app, busy_tenant)
    assert (report.first_bad_seq, report.problem) == (last, "chained earlier than the event before it")
    result = verify(runner, busy_tenant)
    assert result.exit_code == 1
    assert f"FAILED at seq {last}: chained earlier than the event before it" in result.output


def test_an_event_stripped_of_its_chaining_time_fails(app, busy_tenant):
    last = head_seq(app, busy_tenant)

    def strip(seq, body):
        if seq == last:
            body[12] = None

    _rewrite_chain(app, busy_tenant, strip)
    report = chain_report(app, busy_tenant)
    assert (report.first_bad_seq, report.problem) == (last, "chained earlier than the event before it")
