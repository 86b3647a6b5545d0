"""Canned replies: a tenant's macros for answers given again and again, kept by managers,
and filled in for one ticket when an agent inserts one into a reply."""

import re

from flask_babel import format_datetime
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from crm.audit.chain import digest
from crm.audit.service import Actor, record
from crm.errors import DomainError
from crm.extensions import db
from crm.tickets.models import CannedReply, Ticket
from crm.tickets.service import MAX_DESCRIPTION, check_text

PLACEHOLDERS = ("customer_name", "ticket_number", "deadline")
# Anything in braces that looks like a placeholder, so a misspelt one is refused when it
# is saved rather than sent to a customer as "{custmer_name}".
PLACEHOLDER_RE = re.compile(r"\{(\w+)\}")


def list_canned() -> list[CannedReply]:
    return list(db.session.scalars(select(CannedReply).order_by(CannedReply.title)))


def canned_by_id(reply_id: int) -> CannedReply | None:
    return db.session.scalars(select(CannedReply).where(CannedReply.id == reply_id)).one_or_none()


def _checked(title: str, body: str, *, editing: CannedReply | None = None) -> tuple[str, str]:
    title = check_text(title, "title", 100, required=True)
    body = check_text(body, "body", MAX_DESCRIPTION, required=True)
    unknown = sorted({name for name in PLACEHOLDER_RE.findall(body) if name not in PLACEHOLDERS})
    if unknown:
        raise DomainError(
            _l(
                "Unknown placeholder {%(name)s}. Use {customer_name}, {ticket_number} or {deadline}.",
                name=unknown[0],
            ),
            "body",
        )
    same_title = select(CannedReply.id).where(CannedReply.title == title)
    if editing is not None:
        same_title = same_title.where(CannedReply.id != editing.id)
    if db.session.scalars(same_title).first() is not None:
        raise DomainError(_l("Another canned reply has this title."), "title")
    return title, body


def create_canned(*, title: str, body: str, actor: Actor) -> CannedReply:
    title, body = _checked(title, body)
    reply = CannedReply(title=title, body=body)
    db.session.add(reply)
    db.session.flush()
    record(
        "canned_reply.created",
        "canned_reply",
        reply.id,
        actor=actor,
        data={"title": title, "body_sha256": digest(body)},
    )
    return reply


def update_canned(reply: CannedReply, *, title: str, body: str, actor: Actor) -> None:
    title, body = _checked(title, body, editing=reply)
    if (title, body) == (reply.title, reply.body):
        return
    record(
        "canned_reply.updated",
        "canned_reply",
        reply.id,
        actor=actor,
        data={
            "title": {"before": reply.title, "after": title},
            "body_sha256": {"before": digest(reply.body), "after": digest(body)},
        },
    )
    reply.title, reply.body = title, body
    db.session.flush()


def delete_canned(reply: CannedReply, *, actor: Actor) -> None:
    record(
        "canned_reply.deleted",
        "canned_reply",
        reply.id,
        actor=actor,
        data={"title": reply.title, "body_sha256": digest(reply.body)},
    )
    db.session.delete(reply)
    db.session.flush()


def render_canned(reply: CannedReply, ticket: Ticket) -> str:
    """The reply's text for ``ticket``, its placeholders filled in."""
    # Written the same way in every language, in the tenant's time zone: no misreading.
    deadline = format_datetime(ticket.respond_by, "yyyy-MM-dd HH:mm") if ticket.respond_by else ""
    values = {"customer_name": ticket.requester_name, "ticket_number": ticket.reference, "deadline": deadline}
    return PLACEHOLDER_RE.sub(lambda match: values.get(match.group(1), match.group(0)), reply.body)
