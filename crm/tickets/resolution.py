"""The rules for giving a customer a final answer, and what they will read.

- A refund ticket is resolved by its refund decision (whose final response resolves it).
  The ticket page's Resolve ends one only on stated grounds: the customer asked for no
  refund (``no_refund_requested``), or a decision already told to the customer stands.
- After the customer said "not satisfied" (``needs_manager``), the next answer is a
  manager's review: it needs a manager who took no part in the previous one (who proposed
  or approved its decision, or resolved the ticket).
- Nothing final goes out unseen: ``outgoing`` is exactly what the customer will get, the
  public reply and the email, and its ``sha256`` ties a send to the preview shown.
"""

import json
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from crm.access import Role
from crm.audit.chain import digest
from crm.auth.models import User
from crm.errors import Conflict, DomainError
from crm.extensions import db
from crm.refunds import ledger
from crm.refunds.models import DecisionStatus, RefundDecision
from crm.tickets import emails
from crm.tickets.labels import STATUS_LABELS
from crm.tickets.models import EntryKind, Kind, Status, ThreadEntry, Ticket

NO_REFUND_REQUESTED = "no_refund_requested"
# Where the tracking link goes in an email shown before it is sent (as staff read copies).
LINK_SHOWN = "[…]"


@dataclass(frozen=True)
class Outgoing:
    """What the customer will receive: the reply on their tracking page, and the email
    (when they gave an address for this ticket)."""

    thread_text: str
    email_to: str | None
    email_subject: str | None
    email_body: str | None

    @property
    def sha256(self) -> str:
        return digest(json.dumps([self.thread_text, self.email_to, self.email_subject, self.email_body]))


def outgoing(ticket: Ticket, template: str, message: str) -> Outgoing:
    """The public reply ``message`` and the email ``template`` would send with it."""
    address = ticket.requester.email
    if not address:
        return Outgoing(message, None, None, None)
    subject, body = emails.compose(template, ticket=ticket, message=message, link=LINK_SHOWN)
    return Outgoing(message, address, subject, body)


def previous_deciders(ticket: Ticket) -> set[int]:
    """Who took part in the ticket's last answer: who proposed and approved its last final
    decision, and who last resolved it."""
    people: set[int] = set()
    decision = db.session.scalars(
        select(RefundDecision)
        .where(RefundDecision.ticket_id == ticket.id, RefundDecision.status == DecisionStatus.APPROVED)
        .order_by(RefundDecision.id.desc())
        .limit(1)
    ).one_or_none()
    if decision is not None:
        people |= {decision.proposed_by_id, decision.decided_by_id}
    changes = db.session.scalars(
        select(ThreadEntry)
        .where(ThreadEntry.ticket_id == ticket.id, ThreadEntry.kind == EntryKind.STATUS_CHANGE)
        .order_by(ThreadEntry.id.desc())
    )
    resolved = next((entry for entry in changes if entry.details.get("to") == Status.RESOLVED), None)
    if resolved is not None and resolved.author_user_id is not None:
        people.add(resolved.author_user_id)
    return people - {None}


def is_reviewer(ticket: Ticket, user: User) -> bool:
    """May ``user`` give the manager's review the customer asked for?"""
    return user.role == Role.MANAGER and user.id not in previous_deciders(ticket)


def check_reviewer(ticket: Ticket, user: User) -> None:
    """After "not satisfied", only a manager who took no part in the last answer may give
    the next one."""
    if not ticket.needs_manager:
        return
    if user.role != Role.MANAGER:
        raise Conflict(
            _l("The customer asked for a manager's review: a manager must give the next answer."), "body"
        )
    if user.id in previous_deciders(ticket):
        raise Conflict(
            _l(
                "The customer asked for a manager's review: it must come from a manager who took no "
                "part in the previous answer."
            ),
            "body",
        )


def grounds_to_resolve(ticket: Ticket, user: User, no_refund_reason: str | None) -> dict:
    """Why the ticket page's Resolve may end this ticket (the audit event's data), or a
    refusal saying what to do instead."""
    if ticket.status == Status.PENDING_APPROVAL:
        raise Conflict(
            _l(
                "A refund decision waits for a manager's approval; "
                "its final response will resolve the ticket."
            ),
            "body",
        )
    if not ticket.is_open:
        raise Conflict(
            _l("This ticket is %(status)s; reopen it first.", status=STATUS_LABELS[Status(ticket.status)]),
            "body",
        )
    if no_refund_reason not in (None, "", NO_REFUND_REQUESTED):
        raise DomainError(_l("Choose a reason from the list."), "no_refund_requested")
    check_reviewer(ticket, user)
    if ticket.kind != Kind.REFUND:
        return {"grounds": "answer"}
    if no_refund_reason == NO_REFUND_REQUESTED:
        return {"grounds": NO_REFUND_REQUESTED}
    decision = ledger.latest_decision(ticket.id)
    if decision is not None and decision.status == DecisionStatus.APPROVED and decision.final_response_at:
        return {"grounds": "decision_stands", "decision_id": decision.id}
    raise Conflict(
        _l(
            "A refund request is resolved by its refund decision: record it on the refund page. "
            "If the customer asked for no refund, tick “No refund was requested”."
        ),
        "no_refund_requested",
    )


def preview_resolution(ticket: Ticket, body: str, *, user: User, no_refund_reason: str | None) -> Outgoing:
    """What Resolve would send, checked as Resolve checks it; nothing is written."""
    grounds_to_resolve(ticket, user, no_refund_reason)
    text = (body or "").strip()
    if not text:
        raise DomainError(_l("This field is required."), "body")
    return outgoing(ticket, "resolved", text)
