"""Savepoints (``begin_nested``) inside a transaction: the bulk change and the imports
use one per item. SQLAlchemy fires its commit and rollback events for savepoints too, so
work kept for the real commit could run too early or be dropped. It must not: audit
events and jobs of a released savepoint wait for the commit, those of a savepoint that
rolls back go, and those from before it stay."""

import pytest
from sqlalchemy import select

from crm import jobs
from crm.audit.models import AuditEvent, AuditInbox
from crm.audit.service import Actor, record
from tests.conftest import acting_for

RAN: list[str] = []


def note_job(name: str) -> None:
    """A job that says it ran."""
    RAN.append(name)


def step(name: str) -> None:
    record(f"test.{name}", "ticket", name, actor=Actor.system())
    jobs.enqueue(note_job, name)


def test_savepoints_keep_the_audit_trail_and_jobs_in_step_with_the_data(app, make_tenant):
    tenant = make_tenant()
    RAN.clear()
    with acting_for(app, tenant) as session:
        step("before")
        with session.begin_nested():
            step("kept")
        with pytest.raises(RuntimeError), session.begin_nested():
            step("undone")
            raise RuntimeError("this item fails")
        with session.begin_nested():
            step("after")
        assert RAN == []  # nothing handed over before the commit
        session.commit()
    assert RAN == ["before", "kept", "after"]
    with acting_for(app, tenant) as session:
        actions = list(
            session.scalars(
                select(AuditEvent.action).where(AuditEvent.action.like("test.%")).order_by(AuditEvent.seq)
            )
        )
        waiting = list(session.scalars(select(AuditInbox.action)))
    assert actions == ["test.before", "test.kept", "test.after"]
    assert waiting == []  # all chained at the commit, none left for the sweep
