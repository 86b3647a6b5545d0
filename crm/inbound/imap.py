"""Fetching a tenant's inbound mail from an IMAP mailbox, for a support address whose
mail server cannot pipe to the desk: every unread message is delivered as the pipe would
(crm.inbound.service), committed, then marked read. A message that fails stays unread
for the next round; one delivered twice (marked read failed after the commit) files
once, by its Message-ID. Python's imaplib speaks IMAP; the rq worker polls every minute,
cron can run ``flask mail poll`` instead.
"""

import imaplib
import logging
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import unquote, urlsplit

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from crm import jobs
from crm.audit.service import Actor, record
from crm.errors import DomainError
from crm.extensions import db
from crm.inbound import service
from crm.outbound import is_public_host
from crm.provisioning.models import TenantSettings
from crm.provisioning.service import tenant_settings
from crm.sealed import seal, unseal
from tenants import Tenant, spanning, tenant_context

log = logging.getLogger(__name__)
SEAL_PURPOSE = "imap"
POLL_JOB_PREFIX = "mail-poll-"
TIMEOUT_SECONDS = 30
CHECK_TIMEOUT_SECONDS = 10  # an admin waits for this one
MAX_PER_ROUND = 200


@dataclass(frozen=True)
class Mailbox:
    secure: bool
    host: str
    port: int
    user: str
    password: str
    folder: str

    @classmethod
    def of(cls, url: str) -> "Mailbox":
        parts = urlsplit(url)
        if parts.scheme not in ("imap", "imaps") or not parts.hostname or not parts.username:
            raise DomainError(
                _l("Give the mailbox as imaps://user:password@host/INBOX (or imap://…)."), "url"
            )
        try:
            port = parts.port or (993 if parts.scheme == "imaps" else 143)
        except ValueError:
            raise DomainError(_l("The port is not a number."), "url") from None
        return cls(
            secure=parts.scheme == "imaps",
            host=parts.hostname,
            port=port,
            user=unquote(parts.username),
            password=unquote(parts.password or ""),
            folder=unquote(parts.path.lstrip("/")) or "INBOX",
        )

    def shown(self) -> str:
        """The mailbox without its password."""
        return f"{'imaps' if self.secure else 'imap'}://{self.user}@{self.host}:{self.port}/{self.folder}"


def check_reachable(box: Mailbox) -> None:
    """The desk connects only to public mail servers (unless the operator allows private
    ones, WEBHOOKS_ALLOW_PRIVATE), and sends a password unencrypted to none of them."""
    if current_app.config.get("WEBHOOKS_ALLOW_PRIVATE"):
        return
    if not is_public_host(box.host, box.port, "host"):
        raise DomainError(
            _l("This server has a private or local address, which the desk may not reach."), "host"
        )
    if not box.secure:
        raise DomainError(
            _l("A server on the internet needs IMAP over TLS: the password would cross it readable."),
            "security",
        )


def set_mailbox(url: str | None, *, actor: Actor, public_only: bool = True) -> Mailbox | None:
    """Fetch the tenant's mail from ``url`` from now on (None: stop). ``public_only``: its
    server is checked again at every poll, as when it was set (a name can be made to
    resolve elsewhere later); False only for an operator's, who may choose a private one."""
    mailbox = Mailbox.of(url) if url else None
    settings = tenant_settings()
    settings.imap_url_sealed = seal(SEAL_PURPOSE, url) if url else None
    settings.imap_public_only = public_only
    record(
        "tenant.imap_set",
        "tenant",
        settings.tenant_id,
        actor=actor,
        data={"mailbox": mailbox.shown() if mailbox else None, "public_only": public_only},
    )
    return mailbox


def mailbox() -> Mailbox | None:
    sealed = tenant_settings().imap_url_sealed
    url = unseal(SEAL_PURPOSE, sealed) if sealed else None
    return Mailbox.of(url) if url else None


@dataclass
class Round:
    outcomes: dict[str, int] = field(
        default_factory=lambda: {"filed": 0, "new": 0, "ignored": 0, "failed": 0}
    )

    def summary(self) -> str:
        counts = self.outcomes
        return (
            f"fetched {sum(counts.values())}: filed {counts['filed']}, new {counts['new']}, "
            f"ignored {counts['ignored']}, failed {counts['failed']}"
        )


@contextmanager
def _opened(box: Mailbox, timeout: float = TIMEOUT_SECONDS) -> Iterator[imaplib.IMAP4]:
    """Signed in to the mailbox, its folder selected."""
    # IMAP4_SSL's default context checks no certificate: the password would go to anyone
    # in the path.
    if box.secure:
        opened = imaplib.IMAP4_SSL(
            box.host, box.port, timeout=timeout, ssl_context=ssl.create_default_context()
        )
    else:
        opened = imaplib.IMAP4(box.host, box.port, timeout=timeout)
    with opened as client:
        client.login(box.user, box.password)
        status, detail = client.select(_quoted(box.folder))
        if status != "OK":
            raise imaplib.IMAP4.error(f"cannot open {box.folder}: {detail}")
        yield client


def check(box: Mailbox) -> None:
    """Sign in and open the folder, or say what the server said (a mailbox set on the
    admin's page is checked before it is kept)."""
    try:
        with _opened(box, timeout=CHECK_TIMEOUT_SECONDS):
            pass
    except (OSError, imaplib.IMAP4.error) as error:
        reason = str(error) or type(error).__name__
        raise DomainError(
            _l("The desk could not open this mailbox: %(reason)s", reason=reason[:300])
        ) from None


def poll() -> Round:
    """Deliver the unread messages of the tenant's mailbox (for the tenant in context)."""
    box = mailbox()
    if box is None:
        raise DomainError(_l("No IMAP mailbox is set for this organisation."))
    if tenant_settings().imap_public_only:
        check_reachable(box)
    result = Round()
    with _opened(box) as client:
        _typ, found = client.uid("SEARCH", None, "UNSEEN")
        for uid in (found[0] or b"").split()[:MAX_PER_ROUND]:
            _typ, fetched = client.uid("FETCH", uid, "(BODY.PEEK[])")
            raw = next((part[1] for part in fetched if isinstance(part, tuple)), None)
            if raw is None:
                continue
            try:
                delivery = service.deliver(raw)
                db.session.commit()
            except Exception:
                db.session.rollback()
                log.exception("inbound message %s of %s could not be filed", uid, box.shown())
                result.outcomes["failed"] += 1
                continue
            result.outcomes[delivery.outcome] += 1
            client.uid("STORE", uid, "+FLAGS", "(\\Seen)")
    return result


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def poll_all() -> None:
    """Every tenant with a mailbox, one after another; one's failure stops no other."""
    query = select(TenantSettings.tenant_id).where(TenantSettings.imap_url_sealed.is_not(None))
    for tenant_id in spanning.imap_tenants(db.session, query):
        tenant = db.session.get(Tenant, tenant_id)
        if tenant is None or not tenant.is_active:
            continue
        with tenant_context(tenant):
            try:
                poll()
            except (OSError, imaplib.IMAP4.error, DomainError):
                db.session.rollback()
                log.exception("the mailbox of tenant %s could not be read", tenant_id)


def poll_job() -> None:
    try:
        poll_all()
    finally:
        schedule_poll()


def schedule_poll(now: datetime | None = None) -> str | None:
    return jobs.book_next_minute(poll_job, POLL_JOB_PREFIX, now)
