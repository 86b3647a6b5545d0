"""Background jobs run after their transaction commits, never after a rollback, for the
tenant that enqueued them: in-process without Redis, through a real rq worker with it."""

import pytest
from rq import SimpleWorker
from sqlalchemy import select

from crm import jobs
from crm.audit.models import AuditEvent
from tests.conftest import acting_for, requires_redis
from tests.jobs_for_tests import fail_always, record_job_ran


def job_markers(app, tenant) -> list[str]:
    with acting_for(app, tenant) as session:
        query = select(AuditEvent.subject_id).where(AuditEvent.action == "test.job_ran")
        return list(session.scalars(query))


def test_inline_job_runs_after_commit_for_its_tenant_and_never_after_rollback(app, make_tenant):
    tenant, bystander = make_tenant(), make_tenant()
    with acting_for(app, tenant) as session:
        jobs.enqueue(record_job_ran, "rolled-back")
        session.rollback()
        jobs.enqueue(record_job_ran, "committed")
        assert job_markers(app, tenant) == []  # not before the commit
        session.commit()
    assert job_markers(app, tenant) == ["committed"]
    assert job_markers(app, bystander) == []


def test_a_failing_inline_job_does_not_undo_the_committed_change(app, make_tenant, caplog):
    tenant = make_tenant()
    with acting_for(app, tenant) as session:
        jobs.enqueue(fail_always, "x")
        jobs.enqueue(record_job_ran, "after-the-failure")
        session.commit()
    assert job_markers(app, tenant) == ["after-the-failure"]
    assert "fails on purpose" in caplog.text


def test_only_module_level_functions_can_be_jobs(app, make_tenant):
    with acting_for(app, make_tenant()), pytest.raises(ValueError, match="importable"):
        jobs.enqueue(lambda: None)


def run_worker(rq_app) -> None:
    with rq_app.app_context():
        SimpleWorker([jobs.queue()], connection=jobs.redis_connection()).work(burst=True)


@requires_redis
def test_committed_job_runs_once_through_a_real_rq_worker_with_its_tenant(rq_app, make_tenant):
    tenant, bystander = make_tenant(), make_tenant()
    with acting_for(rq_app, tenant) as session:
        jobs.enqueue(record_job_ran, "rolled-back")
        session.rollback()
        jobs.enqueue(record_job_ran, "committed")
        session.commit()
        queued = jobs.queue().jobs
    assert [job.args[0] for job in queued] == ["tests.jobs_for_tests.record_job_ran"]
    assert queued[0].retries_left == 3
    assert job_markers(rq_app, tenant) == []  # waiting for a worker
    run_worker(rq_app)
    assert job_markers(rq_app, tenant) == ["committed"]
    assert job_markers(rq_app, bystander) == []
    run_worker(rq_app)  # nothing left: it ran once
    assert job_markers(rq_app, tenant) == ["committed"]


@requires_redis
def test_a_failing_rq_job_is_kept_for_retry(rq_app, make_tenant):
    tenant = make_tenant()
    with acting_for(rq_app, tenant) as session:
        jobs.enqueue(fail_always, "x")
        session.commit()
    run_worker(rq_app)
    with rq_app.app_context():
        scheduled = jobs.queue().scheduled_job_registry.get_job_ids()
    assert len(scheduled) == 1  # rq's Retry put it back, 10 s later
