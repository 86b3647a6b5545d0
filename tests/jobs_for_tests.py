"""Jobs the job tests enqueue. Module-level, so rq can import them by name."""

from crm.audit.service import Actor, record


def record_job_ran(marker: str) -> None:
    """Leave a trace in the audit trail of whichever tenant the job runs for."""
    record("test.job_ran", "job", marker, actor=Actor.system(), data={"marker": marker})


def fail_always(marker: str) -> None:
    raise RuntimeError(f"job {marker} fails on purpose")
