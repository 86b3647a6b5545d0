"""Keeping the do-not-contact list: adding (at once, from any source), removing (a
manager, with a reason), and telling whether a number or an address is on it.

An entry is a fact about a number or an address, not about a lead: it holds wherever
that number appears, on leads and tickets alike. Audit events carry digests of the
number and the reason, never the values.
"""

from dataclasses import dataclass
from datetime import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import or_, select

from crm.access import Role
from crm.audit.chain import digest
from crm.audit.service import Actor, record
from crm.auth.models import User
from crm.columns import utcnow
from crm.customers.service import normalise_phone
from crm.dnc.models import DoNotContact, EntryKind, EntrySource
from crm.errors import DomainError, NotFound
from crm.extensions import db, insert_new
from crm.mail_addresses import check_email
from crm.provisioning.service import tenant_settings
from crm.tickets.input_checks import check_text

MAX_REASON = 500
PAGE_SIZE = 100


@dataclass(frozen=True)
class Standing:
    """What the list says of one person's number and address right now."""

    entries: list[DoNotContact]

    @property
    def listed(self) -> bool:
        return bool(self.entries)

    @property
    def since(self) -> datetime | None:
        return max((entry.created_at for entry in self.entries), default=None)


def checked_value(kind: str, value: str) -> tuple[EntryKind, str]:
    """An entry's kind and value as kept: a phone in E.164, an address in lower case."""
    try:
        kind = EntryKind(kind)
    except ValueError:
        raise DomainError(_l("Give a phone number or an email address."), "value") from None
    if kind == EntryKind.PHONE:
        return kind, normalise_phone(value, tenant_settings().country)
    try:
        return kind, check_email(value)
    except DomainError as error:
        raise DomainError(error.message, "value") from None


def kind_of(value: str) -> str:
    """What a value typed in one box is: an address if it has an "@", else a number."""
    return EntryKind.EMAIL if "@" in (value or "") else EntryKind.PHONE


def standing(phone: str | None, email: str | None) -> Standing:
    """The standing entries for this number and address (either may be None)."""
    matches = [
        (DoNotContact.kind == kind) & (DoNotContact.value == value)
        for kind, value in ((EntryKind.PHONE, phone), (EntryKind.EMAIL, email and email.lower()))
        if value
    ]
    if not matches:
        return Standing([])
    query = select(DoNotContact).where(DoNotContact.removed_at.is_(None), or_(*matches))
    return Standing(list(db.session.scalars(query.order_by(DoNotContact.id))))


def listed_values(phones: list[str | None], emails: list[str | None]) -> set[str]:
    """Which of these numbers and addresses have a standing entry (one query, for a
    list page's badges)."""
    phones = [p for p in phones if p]
    emails = [e.lower() for e in emails if e]
    matches = [
        (DoNotContact.kind == kind) & DoNotContact.value.in_(values)
        for kind, values in ((EntryKind.PHONE, phones), (EntryKind.EMAIL, emails))
        if values
    ]
    if not matches:
        return set()
    query = select(DoNotContact.value).where(DoNotContact.removed_at.is_(None), or_(*matches))
    return set(db.session.scalars(query))


def add_entry(
    kind: str,
    value: str,
    *,
    reason: str,
    source: str,
    actor: Actor,
    user: User | None = None,
    lead_id: int | None = None,
) -> tuple[DoNotContact, bool]:
    """Put a number or an address on the list, at once; (the standing entry, whether
    this call added it). One already listed stays as it was."""
    kind, value = checked_value(kind, value)
    reason = check_text(reason, "reason", MAX_REASON, required=True)
    source = EntrySource(source)
    row = {
        "kind": kind,
        "value": value,
        "reason": reason,
        "source": source,
        "added_by_id": user.id if user else None,
        "lead_id": lead_id,
        "created_at": utcnow(),
    }
    inserted = insert_new(DoNotContact, [row], DoNotContact.id)
    entry = _standing_entry(kind, value)
    if inserted:
        record(
            "dnc.added",
            "do_not_contact",
            entry.id,
            actor=actor,
            data={
                "kind": kind,
                "value_sha256": digest(value),
                "source": source,
                "reason_sha256": digest(reason),
                "lead_id": lead_id,
            },
        )
    return entry, bool(inserted)


def _standing_entry(kind: str, value: str) -> DoNotContact:
    return db.session.scalars(
        select(DoNotContact).where(
            DoNotContact.kind == kind, DoNotContact.value == value, DoNotContact.removed_at.is_(None)
        )
    ).one()


def entry_by_id(entry_id: int) -> DoNotContact | None:
    return db.session.get(DoNotContact, entry_id)


def remove_entry(entry: DoNotContact, *, reason: str, user: User, actor: Actor) -> None:
    """Take a number or an address off the list: a manager's decision, with its reason.
    The entry stays as history."""
    if user.role not in (Role.MANAGER, Role.ADMIN):
        raise DomainError(_l("Only a manager can remove an entry from the do-not-contact list."))
    _remove(entry, reason=reason, by_user=user, actor=actor)


def remove_by_key(entry: DoNotContact, *, reason: str, actor: Actor) -> None:
    """An API key with ``dnc:write`` takes an entry off the list (a provider's own system
    of record decided it), with the reason, audited as the key."""
    _remove(entry, reason=reason, by_user=None, actor=actor)


def _remove(entry: DoNotContact, *, reason: str, by_user: User | None, actor: Actor) -> None:
    if entry.removed_at is not None:
        raise NotFound(_l("This entry has already been removed."))
    reason = check_text(reason, "reason", MAX_REASON, required=True)
    entry.removed_at = utcnow()
    entry.removed_by_id = by_user.id if by_user else None
    entry.removal_reason = reason
    record(
        "dnc.removed",
        "do_not_contact",
        entry.id,
        actor=actor,
        data={"kind": entry.kind, "value_sha256": digest(entry.value), "reason_sha256": digest(reason)},
    )


def list_page(q: str = "", *, include_removed: bool = False, before: int | None = None) -> list[DoNotContact]:
    """The newest entries first, a page at a time (keyset on id); ``q`` finds a number
    by its digits or an address by its text."""
    query = select(DoNotContact)
    if not include_removed:
        query = query.where(DoNotContact.removed_at.is_(None))
    q = (q or "").strip()
    if q:
        query = query.where(DoNotContact.value.contains(q.lower(), autoescape=True))
    if before is not None:
        query = query.where(DoNotContact.id < before)
    return list(db.session.scalars(query.order_by(DoNotContact.id.desc()).limit(PAGE_SIZE + 1)))
