"""Chaining audit events in the background, one chainer thread per process.

With ``AUDIT_CHAINING=background`` a commit only hands its tenants to this chainer, so
a request pays for its inbox rows and nothing more; the chainer chains the waiting
events moments later, in batches. Events still waiting when the process exits are
chained then (and any a crash leaves are chained by the next turn or ``flask audit
chain``)."""

import atexit
import logging
import threading
import time

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)

# After a wake-up the chainer lets this long pass before it looks, and a pass starts at
# least PASS_INTERVAL_SECONDS after the one before: so that under load a pass takes the
# events of many commits at once. Each pass costs the same handful of statements and a
# commit whether it chains one event or hundreds: with passes 20 ms apart a hosted-form
# submission paid about a quarter of its CPU for its own pass (docs/performance.md). The
# events are already durable in the inbox; only their place on the chain waits.
LINGER_SECONDS = 0.02
PASS_INTERVAL_SECONDS = 0.2


class BackgroundChainer:
    def __init__(self, chain) -> None:
        self._chain = chain  # chain_pending(engine, tenant_id)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._waiting: set[tuple[Engine, int]] = set()
        self._thread: threading.Thread | None = None
        # One pass at a time: a drain called while the thread is chaining waits for that
        # pass, so "drained" means chained, not merely handed over.
        self._pass = threading.Lock()

    def submit(self, engine: Engine, tenant_ids) -> None:
        """Have these tenants' waiting events chained soon."""
        with self._lock:
            self._waiting.update((engine, tenant_id) for tenant_id in tenant_ids)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="audit-chainer", daemon=True)
                self._thread.start()
                atexit.register(self.drain)
        self._wake.set()

    def drain(self) -> None:
        """Chain everything handed over so far, now, in this thread (after any pass the
        chainer thread is in the middle of)."""
        with self._pass:
            with self._lock:
                waiting, self._waiting = self._waiting, set()
            for engine, tenant_id in sorted(waiting, key=lambda item: item[1]):
                try:
                    self._chain(engine, tenant_id)
                except SQLAlchemyError:
                    log.exception("audit events of tenant %s wait in the inbox to be chained", tenant_id)

    def _run(self) -> None:
        next_pass = 0.0
        while True:
            self._wake.wait()
            time.sleep(max(LINGER_SECONDS, next_pass - time.monotonic()))
            self._wake.clear()
            next_pass = time.monotonic() + PASS_INTERVAL_SECONDS
            self.drain()
