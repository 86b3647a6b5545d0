"""A real SMTP server on loopback (aiosmtpd) and apps with their own mail and job
settings: fixtures for the mail tests (tests/conftest.py makes them everyone's)."""

import email
import email.policy
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller
from flask import Flask

from crm import create_app, jobs
from crm.extensions import db


@dataclass
class Mailbox:
    """What the SMTP server received: one parsed message per DATA."""

    port: int
    messages: list[EmailMessage] = field(default_factory=list)
    recipients: list[list[str]] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope) -> str:  # aiosmtpd calls it by this name
        self.recipients.append(list(envelope.rcpt_tos))
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp_server() -> Iterator[Mailbox]:
    mailbox = Mailbox(port=free_port())
    controller = Controller(mailbox, hostname="127.0.0.1", port=mailbox.port)
    controller.start()
    yield mailbox
    controller.stop()


@pytest.fixture
def make_app(app: Flask) -> Iterator[Callable[..., Flask]]:
    """Apps on the test database with their own mail and job settings: ``SMTP_URL``
    unset unless given, jobs in-process unless ``REDIS_URL`` is given (then on a queue
    of this test's own)."""
    made: list[Flask] = []

    def make(*, smtp_url: str | None = None, redis_url: str | None = None, **config) -> Flask:
        shared = ("TESTING", "SQLALCHEMY_DATABASE_URI", "OWNER_DATABASE_URI", "PASSWORD_HASH_METHOD")
        new_app = create_app(
            {
                **{key: app.config[key] for key in shared},
                "SMTP_URL": smtp_url,
                "REDIS_URL": redis_url,
                "JOBS_QUEUE": f"crm-test-email-{uuid.uuid4().hex[:8]}",
                **config,
            }
        )
        made.append(new_app)
        return new_app

    yield make
    for made_app in made:
        with made_app.app_context():
            if made_app.config["REDIS_URL"]:
                jobs.queue().delete(delete_jobs=True)
            db.engine.dispose()


@pytest.fixture
def smtp_url(smtp_server: Mailbox) -> str:
    return f"smtp://127.0.0.1:{smtp_server.port}"


@pytest.fixture
def smtp_down_url() -> str:
    """A loopback port nothing listens on: connections are refused."""
    return f"smtp://127.0.0.1:{free_port()}"
