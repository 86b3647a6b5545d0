"""Queueing and sending email through the outbox.

A message is an outbox row written in the transaction of the action that caused it; a
job sends it after the commit over ``SMTP_URL``, with rq's retries. Without
``SMTP_URL`` the message is held in the outbox, where admins can read it.
"""

import smtplib
import ssl
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, make_msgid
from urllib.parse import unquote, urlsplit

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from crm import jobs
from crm.audit.chain import digest
from crm.audit.service import Actor, record
from crm.columns import utcnow
from crm.errors import DomainError, NotFound
from crm.extensions import db, insert_rows
from crm.inbound.addresses import reply_address
from crm.notify.models import (
    RESET_LINK_SLOT,
    TRACKING_LINK_SLOT,
    Automatic,
    OutboxMessage,
    OutboxStatus,
)
from crm.tickets.links import mint_tracking_link, tracking_url
from crm.tickets.models import Ticket
from tenants import current_tenant, spanning

MAX_ATTEMPTS = 4  # the first try and rq's three retries
STRANDED_JOB_PREFIX = "outbox-stranded-"
# 7-bit bodies (base64 or quoted-printable when not ASCII): we do not negotiate 8BITMIME.
MAIL_POLICY = SMTP.clone(cte_type="7bit")


def queue_email(
    *,
    to: str,
    subject: str,
    body: str,
    locale: str,
    ticket_id: int | None,
    actor: Actor,
    automatic: Automatic | None,
) -> int:
    """Write the message to the outbox; it is sent after the transaction commits. A
    ``TRACKING_LINK_SLOT`` in ``body`` becomes a new tracking link to the ticket when
    sent. ``automatic``: how the desk sent it by itself, else None (a person wrote it).
    Its id: one INSERT, without an object in the session (every receipt writes one)."""
    held = not current_app.config.get("SMTP_URL")
    row = {
        "ticket_id": ticket_id,
        "to_address": to,
        "subject": subject[:300],
        "body": body,
        "locale": locale,
        "status": OutboxStatus.HELD if held else OutboxStatus.QUEUED,
        "auto_submitted": automatic,
    }
    ((message_id,),) = insert_rows(OutboxMessage, [row], OutboxMessage.id)
    record(
        "email.queued",
        "email",
        message_id,
        actor=actor,
        data={
            "ticket_id": ticket_id,
            "to_sha256": digest(to),
            "subject_sha256": digest(subject),
            "body_sha256": digest(body),
            "held": held,
        },
    )
    if not held:
        jobs.enqueue(send_outbox_message, message_id)
    return message_id


@dataclass(frozen=True)
class OutboxEntry:
    """An outbox message as the admin page lists it, with its ticket's number and reference."""

    message: OutboxMessage
    ticket_number: int | None
    ticket_reference: str | None


def outbox_page(*, before: int | None, limit: int, status: str | None = None) -> list[OutboxEntry]:
    """The tenant's messages newest first, ``limit`` of them older than the id ``before``."""
    query = (
        select(OutboxMessage, Ticket.number, Ticket.reference)
        .outerjoin(Ticket, Ticket.id == OutboxMessage.ticket_id)
        .order_by(OutboxMessage.id.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(OutboxMessage.id < before)
    if status is not None:
        query = query.where(OutboxMessage.status == status)
    return [OutboxEntry(*row) for row in db.session.execute(query)]


def send_outbox_message(message_id: int) -> None:
    """Job: send one queued outbox message, at most once.

    The message is marked ``sending`` and committed before the mail server is spoken
    to: a retry, a second job or a sweep finds it no longer queued and leaves it, and a
    sender killed mid-send leaves it ``sending`` (shown as interrupted), never ``sent``.
    A temporary failure puts it back in the queue and raises, for rq to retry later; a
    refusal (5xx) or the last attempt fails it for good, with the server's answer."""
    message = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.id == message_id).with_for_update()
    ).one_or_none()
    if message is None or message.status != OutboxStatus.QUEUED:
        return
    if not current_app.config.get("SMTP_URL"):
        # A worker started without SMTP_URL: keep the message for the admin page rather
        # than try some default server.
        message.status = OutboxStatus.HELD
        record("email.held", "email", message.id, actor=Actor.system(), data={"reason": "no SMTP_URL"})
        return
    message.attempts += 1
    message.status = OutboxStatus.SENDING
    message.last_attempt_at = utcnow()
    record("email.sending", "email", message.id, actor=Actor.system(), data=_delivery_data(message))
    db.session.commit()
    try:
        deliver(message, _with_links(message))
    except (OSError, smtplib.SMTPException) as error:
        refused = _refused(error)
        message.last_error = (refused or f"{type(error).__name__}: {error}")[:500]
        final = refused is not None or message.attempts >= MAX_ATTEMPTS
        message.status = OutboxStatus.FAILED if final else OutboxStatus.QUEUED
        # Every attempt is on the record, with the kind of error (not its text: it may
        # quote the address).
        record(
            "email.failed" if final else "email.attempt_failed",
            "email",
            message.id,
            actor=Actor.system(),
            data={**_delivery_data(message), "error": type(error).__name__, "refused": refused is not None},
        )
        if final:
            return
        # Keep the attempt, then let rq retry the job later.
        db.session.commit()
        raise
    message.status = OutboxStatus.SENT
    message.sent_at = utcnow()
    record("email.sent", "email", message.id, actor=Actor.system(), data=_delivery_data(message))


def _refused(error: Exception) -> str | None:
    """The server's answer when it refused the message for good (a 5xx reply to the
    sender, a recipient or the data), else None: trying again would not help."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        answers = list(error.recipients.values())
    elif isinstance(error, (smtplib.SMTPSenderRefused, smtplib.SMTPDataError)):
        answers = [(error.smtp_code, error.smtp_error)]
    else:
        return None
    if not answers or not all(500 <= code < 600 for code, _text in answers):
        return None
    return "; ".join(
        f"{code} {text.decode(errors='replace') if isinstance(text, bytes) else text}"
        for code, text in answers
    )


def send_again(message_id: int, *, actor: Actor) -> OutboxMessage:
    """An admin puts a failed or interrupted message back in the queue, after checking
    the recipient's mailbox or the server (an interrupted one may already have gone)."""
    message = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.id == message_id).with_for_update()
    ).one_or_none()
    if message is None:
        raise NotFound(_l("There is no such message."))
    if not (message.status == OutboxStatus.FAILED or message.interrupted(utcnow())):
        raise DomainError(_l("Only a failed or interrupted message can be sent again."))
    previous = message.status
    message.status = OutboxStatus.QUEUED
    record("email.requeued", "email", message.id, actor=actor, data={"from": previous})
    jobs.enqueue(send_outbox_message, message.id)
    return message


STRANDED_AFTER = timedelta(minutes=10)  # longer than rq's longest wait between retries
STRANDED_BATCH = 500


def send_stranded(now: datetime | None = None) -> int:
    """Every tenant's queued messages whose job was lost (Redis was down when their
    transaction committed, or the queue was emptied): one attempt each, each in its own
    transaction. How many were tried."""
    before = (now or utcnow()) - STRANDED_AFTER
    waiting_since = func.coalesce(OutboxMessage.last_attempt_at, OutboxMessage.created_at)
    query = (
        select(OutboxMessage.id, OutboxMessage.tenant_id)
        .where(OutboxMessage.status == OutboxStatus.QUEUED, waiting_since < before)
        .order_by(waiting_since)
        .limit(STRANDED_BATCH)
    )
    stranded = spanning.stranded_outbox_messages(db.session, query, before, STRANDED_BATCH)
    db.session.commit()
    # A failed attempt is committed by send_outbox_message itself; the next sweep retries.
    spanning.in_their_tenants(
        db.session, stranded, send_outbox_message, failing=(OSError, smtplib.SMTPException)
    )
    return len(stranded)


def stranded_job() -> None:
    try:
        send_stranded()
    finally:
        schedule_stranded()


def schedule_stranded(now: datetime | None = None) -> str | None:
    return jobs.book_next_minute(stranded_job, STRANDED_JOB_PREFIX, now, every=5)


def _delivery_data(message: OutboxMessage) -> dict:
    return {
        "ticket_id": message.ticket_id,
        "attempts": message.attempts,
        "to_sha256": digest(message.to_address),
    }


def _with_links(message: OutboxMessage) -> str:
    """The body to hand to the mail server, its link slot filled with a new link: to the
    customer's ticket, or to choose a new password. Only the link's digest is stored,
    and never in the outbox."""
    if message.ticket_id is not None and TRACKING_LINK_SLOT in message.body:
        ticket = db.session.scalars(select(Ticket).where(Ticket.id == message.ticket_id)).one()
        return message.body.replace(TRACKING_LINK_SLOT, tracking_url(mint_tracking_link(ticket)))
    if message.ticket_id is None and RESET_LINK_SLOT in message.body:
        from crm.auth import resets  # it writes its mail through this module

        link = resets.link_for(message)
        return message.body.replace(RESET_LINK_SLOT, link) if link else message.body
    return message.body


def deliver(message: OutboxMessage, body: str) -> None:
    """Hand the message to the SMTP server of ``SMTP_URL``
    (``smtp://[user:pass@]host[:port]`` or ``smtps://…``; ``?starttls=1`` upgrades)."""
    url = urlsplit(current_app.config["SMTP_URL"])
    sender = current_app.config.get("MAIL_FROM", "ledgerdesk@localhost")
    email = EmailMessage(policy=MAIL_POLICY)
    email["From"] = formataddr((current_tenant().name, sender))
    email["To"] = message.to_address
    email["Subject"] = message.subject
    email["Date"] = format_datetime(utcnow())
    email["Message-ID"] = message.message_id = make_msgid(domain=sender.partition("@")[2] or "localhost")
    reply_to = _reply_address(message)
    if reply_to:
        email["Reply-To"] = formataddr((current_tenant().name, reply_to))
    if message.auto_submitted:
        email["Auto-Submitted"] = message.auto_submitted
    email.set_content(body)
    smtp_class = smtplib.SMTP_SSL if url.scheme == "smtps" else smtplib.SMTP
    with smtp_class(
        url.hostname or "localhost", url.port or (465 if url.scheme == "smtps" else 25), timeout=20
    ) as smtp:
        if "starttls=1" in (url.query or ""):
            smtp.starttls(context=ssl.create_default_context())
        if url.username:
            smtp.login(unquote(url.username), unquote(url.password or ""))
        smtp.send_message(email)


def _reply_address(message: OutboxMessage) -> str | None:
    """Where the customer's reply goes: the tenant's support address, plus the ticket.
    Only on mail to the customer: a member of staff answering a notice about the ticket
    must not be filed as the customer's message."""
    if message.ticket_id is None:
        return None
    ticket = db.session.get(Ticket, message.ticket_id)
    return reply_address(ticket) if message.to_address == ticket.requester_email else None


def send_waiting() -> tuple[int, int]:
    """Send the tenant's held and queued messages now; returns (sent, not sent).

    For cron where there is no Redis (so no retries), and for messages held before
    SMTP_URL was set."""
    if not current_app.config.get("SMTP_URL"):
        raise DomainError(_l("SMTP_URL is not set: there is no mail server to send to."))
    waiting = db.session.scalars(
        select(OutboxMessage.id)
        .where(OutboxMessage.status.in_((OutboxStatus.HELD, OutboxStatus.QUEUED)))
        .order_by(OutboxMessage.id)
    ).all()
    sent = 0
    for message_id in waiting:
        message = db.session.get(OutboxMessage, message_id)
        if message.status == OutboxStatus.HELD:
            message.status = OutboxStatus.QUEUED
            record("email.released", "email", message.id, actor=Actor.system(), data={})
        try:
            send_outbox_message(message_id)
        except (OSError, smtplib.SMTPException):
            db.session.rollback()  # the failed attempt itself is already committed
            continue
        db.session.commit()
        sent += db.session.get(OutboxMessage, message_id).status == OutboxStatus.SENT
    return sent, len(waiting) - sent
