"""Fault drills for mail (issue 16): Redis stops while customers submit the form (drill
1), a worker is killed while it hands a message to the mail server (drill 3), and the
mail server refuses or is down (drill 4). Real processes throughout: a Redis server of
the test's own that it stops and starts, an rq worker in a subprocess that it kills,
an SMTP server on loopback that answers as it is told."""

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from aiosmtpd.controller import Controller
from redis import Redis
from rq import SimpleWorker
from sqlalchemy import func, select, update

from crm import jobs, ratelimit
from crm.columns import utcnow
from crm.notify import service as notify
from crm.provisioning.models import TenantSettings
from crm.tickets.models import Ticket
from tests.conftest import CSRF_RE, REDIS_URL, acting_for, requires_redis
from tests.mail import Mailbox, free_port
from tests.test_email import audit_actions, outbox_rows, staff_client, submit_refund_form

ROOT = Path(__file__).resolve().parent.parent


def ticket_count(app, tenant) -> int:
    with acting_for(app, tenant) as session:
        return session.scalar(select(func.count()).select_from(Ticket))


# --- drill 1: Redis stops during form submissions --------------------------------------------


@dataclass
class RedisServer:
    """A redis-server of the test's own, on a free port, that keeps nothing on disk (as
    the machine's does): stopping it loses every job it held."""

    port: int
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        client = Redis.from_url(self.url)
        for _ in range(100):
            try:
                client.ping()
                return
            except Exception:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server")
    server = RedisServer(free_port())
    server.start()
    yield server
    server.stop()


def test_with_redis_stopped_every_receipt_has_its_ticket_and_its_mail_goes_once_redis_is_back(
    own_redis, make_app, smtp_server, make_tenant
):
    desk = make_app(
        smtp_url=f"smtp://127.0.0.1:{smtp_server.port}",
        redis_url=own_redis.url,
        RATELIMIT_STORAGE_URI=own_redis.url,
    )
    tenant = make_tenant()
    with acting_for(desk, tenant) as session:
        session.execute(update(TenantSettings).values(form_submissions_per_hour=3))
        session.commit()
    client = desk.test_client()

    before = [f"before{n}@example.test" for n in range(2)]
    during = [f"during{n}@example.test" for n in range(3)]

    def submit(address: str) -> None:
        receipt = client.get(submit_refund_form(client, tenant, email=address).location)
        assert receipt.status_code == 200 and "RF-" in receipt.text

    for address in before:
        submit(address)
    own_redis.stop()  # the queued jobs of those two are lost with it
    for address in during:
        submit(address)
    # Every submission that got a receipt has its ticket.
    assert ticket_count(desk, tenant) == 5
    # The hourly limit still holds while Redis is down, counted in memory: the fourth
    # submission since Redis stopped is refused, and says when to try again.
    page = client.get(f"/t/{tenant.slug}/refund")
    refused = client.post(
        f"/t/{tenant.slug}/refund",
        data={"csrf_token": CSRF_RE.search(page.text).group(1), "name": "Flood", "phone": "13800138000"},
    )
    assert refused.status_code == 429 and refused.headers["Retry-After"]
    assert ticket_count(desk, tenant) == 5
    # The mail waits in the outbox, queued; nothing claims it was sent.
    assert [row.status for row in outbox_rows(desk, tenant)] == ["queued"] * 5
    assert smtp_server.messages == []

    own_redis.start()  # back, empty
    with desk.app_context():
        # The worker's outbox sweep (every five minutes) finds the stranded messages
        # once they have waited past STRANDED_AFTER.
        assert notify.send_stranded(now=utcnow() + notify.STRANDED_AFTER + timedelta(minutes=1)) >= 5
        SimpleWorker([jobs.queue()], connection=jobs.redis_connection()).work(burst=True)

    # Each receipt once (the sweep spans tenants: other tests' stranded mail may come too).
    sent_to = [recipients[0] for recipients in smtp_server.recipients]
    assert sorted(address for address in sent_to if address in before + during) == sorted(before + during)
    assert [row.status for row in outbox_rows(desk, tenant)] == ["sent"] * 5
    assert audit_actions(desk, tenant).count("email.sent") == 5


def test_the_limits_count_in_redis_again_once_it_is_back(own_redis, make_app, make_tenant, monkeypatch):
    desk = make_app(RATELIMIT_STORAGE_URI=own_redis.url)
    tenant = make_tenant()
    client = desk.test_client()
    monkeypatch.setattr(ratelimit, "RECHECK_SECONDS", 0)  # try Redis again at the next request
    own_redis.stop()
    submit_refund_form(client, tenant, email="during@example.test")  # counted in memory
    own_redis.start()  # back, empty
    submit_refund_form(client, tenant, email="after@example.test")
    counted = Redis.from_url(own_redis.url).keys(f"LIMITS:*{tenant.slug}*")
    assert counted, "the submission after Redis came back was not counted in Redis"


@pytest.fixture
def silent_redis() -> Iterator[str]:
    """A Redis address whose server takes connections and never answers: one that hangs,
    or a network that drops what it is sent. The kernel completes the handshakes."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=64)
    yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    listener.close()


def test_a_redis_that_never_answers_delays_a_submission_by_seconds(
    silent_redis, make_app, smtp_url, make_tenant
):
    desk = make_app(smtp_url=smtp_url, redis_url=silent_redis, RATELIMIT_STORAGE_URI=silent_redis)
    tenant = make_tenant()
    # In a thread, so that a hang fails the test instead of stopping the suite.
    submitted = threading.Thread(
        target=submit_refund_form,
        args=(desk.test_client(), tenant),
        kwargs={"email": "hung@example.test"},
        daemon=True,
    )
    submitted.start()
    # Two waits of REDIS_TIMEOUT_SECONDS: the limits (then counted in memory) and the
    # receipt's job. The client's own defaults wait 16 s here (redis-py 8), or forever.
    submitted.join(timeout=10)
    assert not submitted.is_alive(), "the submission still waits on Redis after 10 s"
    assert ticket_count(desk, tenant) == 1
    # The limits counted in memory; the receipt waits in the outbox for the sweep.
    assert [row.status for row in outbox_rows(desk, tenant)] == ["queued"]
    desk.config["REDIS_URL"] = None  # the fixture would empty this app's queue on that server


def test_the_outbox_sweep_leaves_messages_that_are_still_being_retried(make_app, make_tenant):
    """A message whose last attempt was moments ago waits for rq's retry, not the sweep."""
    desk = make_app(smtp_url=f"smtp://127.0.0.1:{free_port()}")  # nothing listens: refused
    tenant = make_tenant()
    submit_refund_form(desk.test_client(), tenant, email="lilei@example.test")
    [row] = outbox_rows(desk, tenant)
    assert (row.status, row.attempts) == ("queued", 1)
    with desk.app_context():
        notify.send_stranded(now=utcnow())
    assert outbox_rows(desk, tenant)[0].attempts == 1


# --- drill 3: a worker killed while it hands a message over -----------------------------------


class StallingMailbox(Mailbox):
    """Takes the message's DATA, then waits to be told whether to accept it."""

    def __init__(self, port: int) -> None:
        super().__init__(port)
        self.in_data = threading.Event()
        self.release = threading.Event()

    async def handle_DATA(self, server, session, envelope) -> str:
        if not self.release.is_set():
            self.in_data.set()
            while not self.release.is_set():  # aiosmtpd's loop thread; the test thread releases it
                time.sleep(0.05)
            return "451 4.3.0 Try again later"  # the sender is long gone by now
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def stalling_smtp() -> Iterator[StallingMailbox]:
    mailbox = StallingMailbox(free_port())
    controller = Controller(mailbox, hostname="127.0.0.1", port=mailbox.port)
    controller.start()
    yield mailbox
    mailbox.release.set()
    controller.stop()


def worker_process(app, **env: str) -> subprocess.Popen:
    """``flask jobs worker --burst`` in its own process, on the app's database and queue."""
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "jobs", "worker", "--burst"],
        cwd=ROOT,
        env={
            **os.environ,
            "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
            "REDIS_URL": app.config["REDIS_URL"],
            "JOBS_QUEUE": app.config["JOBS_QUEUE"],
            **env,
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@requires_redis
def test_a_worker_killed_while_sending_leaves_the_message_interrupted_never_sent_and_never_twice(
    make_app, stalling_smtp, make_tenant, make_user
):
    smtp = f"smtp://127.0.0.1:{stalling_smtp.port}"
    desk = make_app(smtp_url=smtp, redis_url=REDIS_URL)
    tenant = make_tenant()
    submit_refund_form(desk.test_client(), tenant, email="killed@example.test")

    with worker_process(desk, SMTP_URL=smtp) as worker:
        reached = stalling_smtp.in_data.wait(60)
        worker.kill()  # SIGKILL mid-DATA: the server has the bytes and has not answered
        assert reached, worker.stderr.read().decode()
    stalling_smtp.release.set()

    [row] = outbox_rows(desk, tenant)
    assert (row.status, row.attempts, row.sent_at) == ("sending", 1, None)  # never "sent"
    # Whatever retries the job (rq, the sweep, another worker) finds it no longer queued.
    with acting_for(desk, tenant) as session:
        notify.send_outbox_message(row.id)
        session.commit()
    with desk.app_context():
        notify.send_stranded(now=utcnow() + timedelta(hours=1))
    assert outbox_rows(desk, tenant)[0].status == "sending"
    assert ["killed@example.test"] not in stalling_smtp.recipients  # (the sweep may send other tenants' mail)

    admin = staff_client(desk, tenant, make_user, "admin")
    page = admin.get(f"/t/{tenant.slug}/admin/outbox")
    assert "Being handed to the mail server now." in page.text and "Send again" not in page.text
    with time_machine.travel(utcnow() + timedelta(minutes=11), tick=False):
        page = admin.get(f"/t/{tenant.slug}/admin/outbox?status=sending")
        assert "Interrupted while being handed to the mail server" in page.text
        assert "it may or may not have gone out" in page.text
        token = CSRF_RE.search(page.text).group(1)
        resent = admin.post(f"/t/{tenant.slug}/admin/outbox/{row.id}/send-again", data={"csrf_token": token})
    assert resent.status_code == 302
    with desk.app_context():
        SimpleWorker([jobs.queue()], connection=jobs.redis_connection()).work(burst=True)

    [row] = outbox_rows(desk, tenant)
    assert (row.status, row.attempts) == ("sent", 2)
    assert stalling_smtp.recipients.count(["killed@example.test"]) == 1
    actions = audit_actions(desk, tenant)
    assert actions.count("email.sending") == 2 and actions.count("email.sent") == 1
    assert "email.requeued" in actions


def test_only_admins_send_again_and_only_failed_or_interrupted_messages(make_app, make_tenant, make_user):
    desk = make_app()  # no SMTP_URL: held
    tenant = make_tenant()
    submit_refund_form(desk.test_client(), tenant, email="lilei@example.test")
    [row] = outbox_rows(desk, tenant)
    manager = staff_client(desk, tenant, make_user, "manager")
    page = manager.get(f"/t/{tenant.slug}/admin/outbox")
    token = CSRF_RE.search(page.text).group(1)
    url = f"/t/{tenant.slug}/admin/outbox/{row.id}/send-again"
    assert manager.post(url, data={"csrf_token": token}).status_code == 403
    admin = staff_client(desk, tenant, make_user, "admin")
    token = CSRF_RE.search(admin.get(f"/t/{tenant.slug}/admin/outbox").text).group(1)
    refused = admin.post(url, data={"csrf_token": token}, follow_redirects=True)
    assert "Only a failed or interrupted message can be sent again." in refused.text
    assert outbox_rows(desk, tenant)[0].status == "held"
    other = make_tenant()
    other_admin = staff_client(desk, other, make_user, "admin")
    token = CSRF_RE.search(other_admin.get(f"/t/{other.slug}/admin/outbox").text).group(1)
    across = other_admin.post(f"/t/{other.slug}/admin/outbox/{row.id}/send-again", data={"csrf_token": token})
    assert across.status_code == 404
    assert outbox_rows(desk, tenant)[0].status == "held"


# --- drill 4: the mail server refuses -------------------------------------------------------


class RefusingMailbox(Mailbox):
    """Answers every recipient with ``answer``."""

    def __init__(self, port: int, answer: str) -> None:
        super().__init__(port)
        self.answer = answer

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        return self.answer


@pytest.fixture
def refusing_smtp(request) -> Iterator[RefusingMailbox]:
    mailbox = RefusingMailbox(free_port(), request.param)
    controller = Controller(mailbox, hostname="127.0.0.1", port=mailbox.port)
    controller.start()
    yield mailbox
    controller.stop()


@pytest.mark.parametrize(
    "refusing_smtp", ["550 5.1.1 <lilei@example.test>: mailbox unavailable"], indirect=True
)
def test_a_refusal_fails_the_message_at_once_with_the_servers_answer_for_admins(
    make_app, refusing_smtp, make_tenant, make_user
):
    desk = make_app(smtp_url=f"smtp://127.0.0.1:{refusing_smtp.port}")
    tenant = make_tenant()
    client = desk.test_client()
    receipt = client.get(submit_refund_form(client, tenant, email="lilei@example.test").location)
    assert receipt.status_code == 200  # the customer's request is in, whatever the mail does

    [row] = outbox_rows(desk, tenant)
    assert (row.status, row.attempts, row.sent_at) == ("failed", 1, None)  # a 5xx is not retried
    assert "550 5.1.1" in row.last_error and "mailbox unavailable" in row.last_error
    assert audit_actions(desk, tenant)[-1] == "email.failed"
    page = staff_client(desk, tenant, make_user, "admin").get(f"/t/{tenant.slug}/admin/outbox?status=failed")
    assert "Not sent: the mail server refused it." in page.text
    assert "550 5.1.1" in page.text and "Send again" in page.text


@pytest.mark.parametrize("refusing_smtp", ["451 4.7.1 Greylisted, try again later"], indirect=True)
def test_a_temporary_refusal_waits_for_a_retry(make_app, refusing_smtp, make_tenant):
    desk = make_app(smtp_url=f"smtp://127.0.0.1:{refusing_smtp.port}")
    tenant = make_tenant()
    submit_refund_form(desk.test_client(), tenant, email="lilei@example.test")
    [row] = outbox_rows(desk, tenant)
    assert (row.status, row.attempts) == ("queued", 1) and "451" in row.last_error
    assert row.last_attempt_at is not None
