"""Who may do what: the one place role checks live.

Another tenant's objects never get this far: the tenant guard makes them not exist, so
they answer 404. Here a signed-in user of the right tenant without the role gets 403.
A ticket outside an auditor's scope is a 404 too (``crm.auth.scope``): every per-ticket
page finds its ticket through ``readable_ticket_or_404``. What an auditor opens is
recorded (``record_page_read``).
"""

import enum
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps

from flask import Flask, Response, abort, g, request
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from sqlalchemy import select

from crm.audit.service import Actor, record
from crm.auth.scope import ticket_in_scope
from crm.extensions import db
from crm.tickets.models import Ticket
from tenants import current_tenant


class Role(enum.StrEnum):
    AGENT = "agent"
    MANAGER = "manager"
    ADMIN = "admin"
    AUDITOR = "auditor"


STAFF = frozenset(Role)

ROLE_LABELS = {
    Role.AGENT: _l("Agent"),
    Role.MANAGER: _l("Manager"),
    Role.ADMIN: _l("Admin"),
    Role.AUDITOR: _l("Auditor (read-only)"),
}

PERMISSIONS: dict[str, frozenset[Role]] = {
    "desk.view": STAFF,
    "account.edit": STAFF,
    "audit.view": frozenset({Role.ADMIN, Role.MANAGER, Role.AUDITOR}),
    "users.manage": frozenset({Role.ADMIN}),
    "settings.manage": frozenset({Role.ADMIN}),
    # Reading tickets and their files: every staff role, auditors included (read-only).
    "tickets.view": STAFF,
    # Replying, noting, logging calls, changing status, assigning, merging, opening tickets.
    "tickets.work": frozenset({Role.AGENT, Role.MANAGER, Role.ADMIN}),
    "canned.manage": frozenset({Role.MANAGER, Role.ADMIN}),
    # Customers' pages: every request of a person across tickets and leads. Not auditors,
    # whose reading is scoped ticket by ticket.
    "customers.view": frozenset({Role.AGENT, Role.MANAGER, Role.ADMIN}),
    # Mending matching mistakes: merging two records of one person, splitting one off.
    "customers.edit": frozenset({Role.AGENT, Role.MANAGER, Role.ADMIN}),
    # The queue as CSV: customers' contact details in bulk, so not every agent's.
    "tickets.export": frozenset({Role.MANAGER, Role.ADMIN, Role.AUDITOR}),
    "outbox.view": frozenset({Role.ADMIN, Role.MANAGER}),
    "outbox.send": frozenset({Role.ADMIN}),
    # Business calendars, the SLA policy and the regulatory deadline rules.
    "sla.manage": frozenset({Role.MANAGER, Role.ADMIN}),
    # Drafting, comparing and publishing refund policy versions.
    "policies.manage": frozenset({Role.MANAGER, Role.ADMIN}),
    # Manager reports: SLA attainment, the complaints return (read-only; auditors too).
    "reports.view": frozenset({Role.MANAGER, Role.ADMIN, Role.AUDITOR}),
    # API keys and webhooks.
    "api.manage": frozenset({Role.ADMIN}),
    # The do-not-contact list: read by all staff, added to by those who work the desk,
    # removed from by managers (with a reason).
    "dnc.view": STAFF,
    "dnc.add": frozenset({Role.AGENT, Role.MANAGER, Role.ADMIN}),
    "dnc.remove": frozenset({Role.MANAGER, Role.ADMIN}),
    # The sales pipeline: reading leads (auditors included), and working them.
    "leads.view": STAFF,
    "leads.work": frozenset({Role.AGENT, Role.MANAGER, Role.ADMIN}),
    "leads.import": frozenset({Role.MANAGER, Role.ADMIN}),
}
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    role: frozenset(permission for permission, roles in PERMISSIONS.items() if role in roles) for role in Role
}


def can(user, permission: str) -> bool:
    """True if ``user`` (signed in, of the tenant in context) holds ``permission``."""
    if not getattr(user, "is_authenticated", False):
        return False
    return user.role in PERMISSIONS[permission]


def permissions_of(user) -> frozenset[str]:
    """Every permission ``user`` holds (none when signed out). Every page asks, the
    public ones and each email too: one look at the user, then the role's set."""
    if not getattr(user, "is_authenticated", False):
        return frozenset()
    return ROLE_PERMISSIONS.get(user.role, frozenset())


def requires(permission: str) -> Callable:
    """View decorator: sign-in required, then ``permission`` or 403."""
    if permission not in PERMISSIONS:
        raise KeyError(permission)

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        @login_required
        def checked(*args, **kwargs):
            if not can(current_user, permission):
                abort(403)
            return view(*args, **kwargs)

        return checked

    return decorate


def readable_ticket_or_404(ticket: Ticket | None) -> Ticket:
    """The ticket a per-ticket page (or download, or export) shows, or the tenant's 404:
    when no ticket has the number, or the reader's scope leaves it out."""
    if not ticket_in_scope(ticket):
        abort(404)
    return ticket


def client_ip() -> str | None:
    return request.remote_addr


def current_actor() -> Actor:
    """The audit actor for this request: the signed-in user, or an anonymous visitor."""
    if current_user.is_authenticated:
        return Actor("user", str(current_user.id), current_user.email, client_ip())
    return Actor("anonymous", None, "anonymous", client_ip())


@dataclass(frozen=True)
class Reading:
    """What an auditor's page showed, for its ``audit.viewed`` event."""

    action: str
    subject_type: str
    subject_id: str | None
    data: dict


# The most of a requested path an event keeps.
MAX_RECORDED_PATH = 300


def record_auditor_reading(action: str, subject_type: str, subject_id, data: dict | None = None) -> None:
    """Say what this page shows, when the signed-in user is an auditor: the page's event
    (written by ``record_page_read`` once the response is ready) is ``action`` on that
    subject, with ``data``. Nothing to commit here: the reading is its own transaction."""
    if current_user.is_authenticated and current_user.role == Role.AUDITOR:
        g.auditor_reading = Reading(
            action, subject_type, None if subject_id is None else str(subject_id), data or {}
        )


def record_page_read(response: Response) -> Response:
    """A regulator's reading is itself on the record (design section 1): every page and
    file an auditor opens under a tenant, whatever it answered, is an ``audit.viewed``
    event with its path and status, in a transaction of its own. A page that says what
    it showed (``record_auditor_reading``) names its subject; a page about one ticket is
    about that ticket; any other is about the page (its endpoint)."""
    if request.method not in ("GET", "HEAD") or current_tenant() is None or response.status_code >= 500:
        return response
    endpoint = request.endpoint or ""
    if not endpoint or endpoint == "static" or endpoint.startswith("portal."):
        return response  # not a staff page: a mistyped address, or a customer's page
    if not (current_user.is_authenticated and current_user.role == Role.AUDITOR):
        return response
    reading = g.pop("auditor_reading", None) or _reading_of_page(endpoint, response.status_code)
    data = {**reading.data, "path": request.path[:MAX_RECORDED_PATH], "status": response.status_code}
    # Whatever the page left in the session is not part of this reading.
    db.session.rollback()
    record(reading.action, reading.subject_type, reading.subject_id, actor=current_actor(), data=data)
    db.session.commit()
    return response


def _reading_of_page(endpoint: str, status: int) -> Reading:
    number = (request.view_args or {}).get("number")
    if isinstance(number, int) and status < 400:
        ticket = db.session.scalars(select(Ticket).where(Ticket.number == number)).one_or_none()
        if ticket is not None:
            return Reading("audit.viewed", "ticket", str(ticket.id), {"reference": ticket.reference})
    data = {"number": number} if isinstance(number, int) else {}
    return Reading("audit.viewed", "page", endpoint[:64], data)


def init_app(app: Flask) -> None:
    app.after_request(record_page_read)
