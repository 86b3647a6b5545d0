"""The one way to run work in the background.

``enqueue`` is called inside a transaction; the job is handed over only after that
transaction commits, and dropped if it rolls back. With ``REDIS_URL`` it goes to the rq
queue ``crm`` and a worker runs it; without, it runs in-process right after the commit.
Either way it runs in a fresh app context, for the tenant that enqueued it, in its own
transaction. Jobs take ids, not ORM objects, and must be idempotent: rq retries them.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from redis import Redis, RedisError
from rq import Queue, Retry, SimpleWorker
from sqlalchemy import event
from sqlalchemy.orm import Session
from werkzeug.utils import import_string

from crm.columns import utcnow
from crm.config import REDIS_TIMEOUT_SECONDS
from crm.extensions import at_outermost, db, pending_in_transaction
from tenants import Tenant, current_tenant_id, tenant_context

log = logging.getLogger(__name__)

PENDING_KEY = "jobs_pending"
# How often each worker cleans rq's registries and, if no scheduler holds the lock, takes
# it over. rq's default, 10 minutes, left the periodic jobs (SLA sweep, checkpoints, the
# outbox sweep, retries) without a scheduler that long after a worker was killed (soak).
# Maintenance runs between jobs, and an idle worker waits for one up to its TTL less 15 s
# (rq's default TTL, 420 s, would stretch a quiet desk's gap to 7 minutes): 75 s keeps it
# near a minute either way.
MAINTENANCE_SECONDS = 60
WORKER_TTL_SECONDS = 75
RETRY = Retry(max=3, interval=[10, 60, 300])


@dataclass(frozen=True)
class JobCall:
    path: str
    tenant_id: int | None
    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


def _path_of(func: Callable) -> str:
    path = f"{func.__module__}.{func.__qualname__}"
    try:
        importable = import_string(path) is func
    except ImportError:
        importable = False
    if not importable:
        raise ValueError(f"{path} is not importable by name; jobs must be module-level functions")
    return path


def enqueue(func: Callable, *args: Any, **kwargs: Any) -> None:
    """Run ``func(*args, **kwargs)`` after the current transaction commits, for the
    tenant in context."""
    call = JobCall(_path_of(func), current_tenant_id(), args, kwargs)
    pending_in_transaction(PENDING_KEY).append(call)


def schedule_at(when: datetime, func: Callable, *, job_id: str) -> None:
    """Have a worker started ``--with-scheduler`` run ``func()`` (for no tenant) at
    ``when``. Booking the same ``job_id`` again replaces the booking: it runs once."""
    queue().enqueue_at(when, run_job, args=(_path_of(func), None, (), {}), job_id=job_id, description=job_id)


def book_next_minute(
    func: Callable, job_prefix: str, now: datetime | None = None, *, every: int = 1
) -> str | None:
    """Book ``func`` for the start of the next minute (the next one whose number since
    the epoch is a multiple of ``every``) under a job id made of that minute, so however
    many workers or redeploys book it, it runs once per period. Without Redis nothing is
    booked (cron runs the matching command instead)."""
    if not current_app.config.get("REDIS_URL"):
        return None
    at = (now or utcnow()).replace(second=0, microsecond=0) + timedelta(minutes=1)
    at += timedelta(minutes=-int(at.timestamp() // 60) % every)
    job_id = job_prefix + at.strftime("%Y%m%d%H%M")
    schedule_at(at, func, job_id=job_id)
    return job_id


def on_worker_start(app: Flask, func: Callable[[], Any]) -> None:
    """Call ``func`` when ``flask jobs worker`` starts (to book periodic jobs)."""
    app.extensions.setdefault("worker_start", []).append(func)


def run_job(path: str, tenant_id: int | None, args: tuple, kwargs: dict) -> Any:
    """Run one job in a fresh app context and session, for its tenant, and commit."""
    with current_app.app_context():
        tenant = db.session.get(Tenant, tenant_id) if tenant_id is not None else None
        if tenant_id is not None and tenant is None:
            log.warning("job %s dropped: tenant %s no longer exists", path, tenant_id)
            return None
        with tenant_context(tenant):
            try:
                result = import_string(path)(*args, **kwargs)
                db.session.commit()
            except Exception:
                db.session.rollback()
                raise
    return result


def queue(app: Flask | None = None) -> Queue:
    app = app or current_app
    return Queue(app.config["JOBS_QUEUE"], connection=redis_connection(app))


def redis_connection(app: Flask | None = None) -> Redis:
    app = app or current_app
    return app.extensions["redis"]


@at_outermost
def _hand_over(session: Session) -> None:
    calls: list[JobCall] = session.info.pop(PENDING_KEY, [])
    if not calls:
        return
    if current_app.config.get("REDIS_URL"):
        jobs_queue = queue()
        for call in calls:
            try:
                jobs_queue.enqueue_call(
                    run_job,
                    args=(call.path, call.tenant_id, call.args, call.kwargs),
                    retry=RETRY,
                    description=call.path,
                )
            except RedisError:
                # The transaction is committed and stays so; /readyz reports Redis down.
                log.exception("could not enqueue job %s", call.path)
        return
    for call in calls:
        try:
            run_job(call.path, call.tenant_id, call.args, call.kwargs)
        except Exception:
            # The user's action is committed; a failed side job must not undo its reply.
            log.exception("in-process job %s failed", call.path)


@at_outermost
def _drop(session: Session, *args) -> None:
    session.info.pop(PENDING_KEY, None)


def init_app(app: Flask) -> None:
    if app.config.get("REDIS_URL"):
        app.extensions["redis"] = Redis.from_url(
            app.config["REDIS_URL"],
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            socket_timeout=REDIS_TIMEOUT_SECONDS,  # rq raises it for a worker's blocking wait
        )
    session_class = db.session.session_factory.class_
    for name, listener in (
        ("after_commit", _hand_over),
        ("after_rollback", _drop),
        ("after_soft_rollback", _drop),
    ):
        if not event.contains(session_class, name, listener):
            event.listen(session_class, name, listener)


jobs_cli = AppGroup("jobs", help="Background jobs.")


@jobs_cli.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
def worker(burst: bool) -> None:
    """Run an rq worker for the queue, inside this app (needs REDIS_URL)."""
    if not current_app.config.get("REDIS_URL"):
        raise click.ClickException("REDIS_URL is not set: without Redis, jobs run in-process.")
    if not burst:
        for func in current_app.extensions.get("worker_start", ()):
            func()
    # SimpleWorker runs jobs in this process, where the app context already lives.
    SimpleWorker(
        [queue()],
        connection=redis_connection(),
        maintenance_interval=MAINTENANCE_SECONDS,
        worker_ttl=WORKER_TTL_SECONDS,
    ).work(burst=burst, with_scheduler=not burst)
