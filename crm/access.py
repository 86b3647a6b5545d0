"""Who may do what: the one place role checks live.

Another tenant's objects never get this far: the tenant guard makes them not exist, so
they answer 404. Here a signed-in user of the right tenant without the role gets 403.
"""

import enum
from collections.abc import Callable
from functools import wraps

from flask import abort, request
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required

from crm.audit.service import Actor, record


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
    "outbox.view": frozenset({Role.ADMIN, Role.MANAGER}),
    # Business calendars, the SLA policy and the regulatory deadline rules.
    "sla.manage": frozenset({Role.MANAGER, Role.ADMIN}),
    # Drafting, comparing and publishing refund policy versions.
    "policies.manage": frozenset({Role.MANAGER, Role.ADMIN}),
}


def can(user, permission: str) -> bool:
    """True if ``user`` (signed in, of the tenant in context) holds ``permission``."""
    if not getattr(user, "is_authenticated", False):
        return False
    return user.role in PERMISSIONS[permission]


def permissions_of(user) -> frozenset[str]:
    """Every permission ``user`` holds (none when signed out)."""
    return frozenset(permission for permission in PERMISSIONS if can(user, permission))


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


def client_ip() -> str | None:
    return request.remote_addr


def current_actor() -> Actor:
    """The audit actor for this request: the signed-in user, or an anonymous visitor."""
    if current_user.is_authenticated:
        return Actor("user", str(current_user.id), current_user.email, client_ip())
    return Actor("anonymous", None, "anonymous", client_ip())


def record_auditor_reading(action: str, subject_type: str, subject_id, data: dict | None = None) -> bool:
    """A regulator's reading is itself on the record (design section 1): when the signed-in
    user is an auditor, queue ``action`` on what they read; True if it was (the caller
    commits it: a page view has no other change to commit with)."""
    if current_user.role != Role.AUDITOR:
        return False
    record(action, subject_type, subject_id, actor=current_actor(), data=data or {})
    return True
