"""Which tickets a signed-in person may read: an auditor can be limited to tickets
received in a date range or to a list of tickets; everyone else reads every ticket of
the tenant.

A ticket outside the scope does not exist for the request, exactly as another tenant's
does not: ``install`` adds the scope's condition to every ORM read of a ``Ticket`` (pages,
listings, searches, counts, lazy loads) and of an ``AuditEvent``, for the rest of a
request whose user is loaded with a limited scope. Code that reads tickets outside a
request (a job building an auditor's export) applies ``TicketScope.of(user)`` itself:
``ticket_condition()`` in its queries, ``admits(ticket)`` for a ticket in hand.
"""

import enum
from dataclasses import dataclass
from datetime import datetime

from flask import g, has_app_context
from sqlalchemy import ColumnElement, String, and_, cast, event, false, func, or_, select, true
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria

from crm.audit.chain import format_instant
from crm.audit.models import AuditEvent
from crm.tickets.models import Ticket
from tenants import current_tenant_id

# How many tickets a list scope may name: an inspection of more is a date range.
MAX_SCOPE_TICKETS = 500
_G_KEY = "ticket_scope"


class ScopeKind(enum.StrEnum):
    ALL = "all"
    RECEIVED = "received"
    TICKETS = "tickets"


def receipt_time(ticket: Ticket) -> datetime:
    """When the request came in: the receipt time staff recorded, else when it was logged."""
    return ticket.received_at or ticket.created_at


@dataclass(frozen=True)
class TicketScope:
    """The tickets one person may read. ``received_from`` is inclusive and
    ``received_before`` exclusive (either may be open); ``ticket_ids`` are ids."""

    kind: ScopeKind = ScopeKind.ALL
    received_from: datetime | None = None
    received_before: datetime | None = None
    ticket_ids: tuple[int, ...] = ()
    # Whose scope it is: a limited auditor still sees their own events on the audit page.
    user_id: int | None = None

    @classmethod
    def of(cls, user) -> "TicketScope":
        """``user``'s scope: an auditor's as granted, everyone else's all tickets."""
        if user is None or getattr(user, "role", None) != "auditor":
            return cls()
        kind = ScopeKind(user.scope_kind or ScopeKind.ALL)
        if kind == ScopeKind.RECEIVED:
            return cls(kind, user.scope_received_from, user.scope_received_before, user_id=user.id)
        if kind == ScopeKind.TICKETS:
            return cls(kind, ticket_ids=tuple(user.scope_ticket_ids or ()), user_id=user.id)
        return cls(user_id=user.id)

    @property
    def limited(self) -> bool:
        return self.kind != ScopeKind.ALL

    def ticket_condition(self) -> ColumnElement[bool]:
        """SQL: the ticket (``Ticket``) is in scope."""
        if self.kind == ScopeKind.TICKETS:
            return Ticket.id.in_(self.ticket_ids) if self.ticket_ids else false()
        if self.kind == ScopeKind.RECEIVED:
            received = func.coalesce(Ticket.received_at, Ticket.created_at)
            bounds = []
            if self.received_from is not None:
                bounds.append(received >= self.received_from)
            if self.received_before is not None:
                bounds.append(received < self.received_before)
            return and_(true(), *bounds)
        return true()

    def admits(self, ticket: Ticket) -> bool:
        """Whether ``ticket`` (of the tenant in context) is in scope."""
        if self.kind == ScopeKind.TICKETS:
            return ticket.id in self.ticket_ids
        if self.kind == ScopeKind.RECEIVED:
            received = receipt_time(ticket)
            if self.received_from is not None and received < self.received_from:
                return False
            return self.received_before is None or received < self.received_before
        return True

    def event_condition(self) -> ColumnElement[bool]:
        """SQL: the audit event (``AuditEvent``) may be shown. A limited auditor sees
        the events about tickets in scope, and their own (sign-ins, what they read);
        every other event could name or reveal a ticket outside it."""
        if not self.limited:
            return true()
        if self.kind == ScopeKind.TICKETS:
            in_scope = AuditEvent.subject_id.in_([str(ticket_id) for ticket_id in self.ticket_ids])
        else:
            in_scope = AuditEvent.subject_id.in_(
                select(cast(Ticket.id, String)).where(
                    Ticket.tenant_id == current_tenant_id(), self.ticket_condition()
                )
            )
        own = and_(AuditEvent.actor_kind == "user", AuditEvent.actor_id == str(self.user_id))
        return or_(and_(AuditEvent.subject_type == "ticket", in_scope), own)

    def as_audit_data(self) -> dict:
        """The scope as an audit event records it: ids and instants only."""
        if self.kind == ScopeKind.RECEIVED:
            return {
                "kind": self.kind.value,
                "received_from": format_instant(self.received_from) if self.received_from else None,
                "received_before": format_instant(self.received_before) if self.received_before else None,
            }
        if self.kind == ScopeKind.TICKETS:
            return {"kind": self.kind.value, "ticket_ids": sorted(self.ticket_ids)}
        return {"kind": self.kind.value}


ALL_TICKETS = TicketScope()


def enter_request_scope(user) -> None:
    """Confine the rest of this request to ``user``'s tickets (the user loader calls it)."""
    setattr(g, _G_KEY, TicketScope.of(user))


def request_scope() -> TicketScope:
    """The scope of the request in progress (all tickets outside a request, or before a
    user is loaded)."""
    if not has_app_context():
        return ALL_TICKETS
    return g.get(_G_KEY) or ALL_TICKETS


def ticket_in_scope(ticket: Ticket | None) -> bool:
    """Whether the request's reader may see ``ticket``: the check every per-ticket page
    makes (with the tenant's own 404 when it fails)."""
    return ticket is not None and request_scope().admits(ticket)


def install(session_class: type[Session]) -> None:
    """Confine every ORM read of a limited request to its scope (idempotent)."""
    if not event.contains(session_class, "do_orm_execute", _confine_to_scope):
        event.listen(session_class, "do_orm_execute", _confine_to_scope)


def _confine_to_scope(state: ORMExecuteState) -> None:
    if state.is_column_load or not state.is_select or not state.is_orm_statement:
        return
    scope = request_scope()
    if not scope.limited:
        return
    state.statement = state.statement.options(
        with_loader_criteria(Ticket, scope.ticket_condition(), include_aliases=True),
        with_loader_criteria(AuditEvent, scope.event_condition(), include_aliases=True),
    )
