"""A ticket's thread: the entries people read (messages, calls, events, copies of the
emails sent), their attachments, and the audit event of each addition."""

from flask_babel import lazy_gettext as _l
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from crm.audit.chain import digest
from crm.audit.service import Actor, record
from crm.auth.models import User
from crm.columns import utcnow
from crm.errors import DomainError
from crm.extensions import at_outermost, db, insert_rows
from crm.files.models import Attachment
from crm.files.storage import RefusedFile, store
from crm.notify import service as notify
from crm.notify.models import TRACKING_LINK_SLOT, readable
from crm.provisioning.models import AgentDisplay
from crm.provisioning.service import tenant_settings
from crm.sla.models import Clock
from crm.tickets import emails, search
from crm.tickets.input_checks import Upload, check_uploads
from crm.tickets.models import EntryKind, ThreadEntry, Ticket

# Tickets received in the current transaction: their entries need no "last activity" UPDATE.
RECEIVED_KEY = "tickets_received"


def thread(ticket: Ticket, *, public_only: bool) -> list[ThreadEntry]:
    query = select(ThreadEntry).where(ThreadEntry.ticket_id == ticket.id).order_by(ThreadEntry.id)
    entries = list(db.session.scalars(query))
    return [entry for entry in entries if entry.is_public] if public_only else entries


def attachments_by_entry(ticket: Ticket) -> dict[int, list[Attachment]]:
    by_entry: dict[int, list[Attachment]] = {}
    query = select(Attachment).where(Attachment.ticket_id == ticket.id).order_by(Attachment.id)
    for attachment in db.session.scalars(query):
        by_entry.setdefault(attachment.entry_id, []).append(attachment)
    return by_entry


def attachment_of_ticket(
    ticket: Ticket, attachment_id: int, *, public_only: bool = False
) -> Attachment | None:
    """An attachment of this ticket; with ``public_only``, only one the customer can see."""
    query = select(Attachment).where(Attachment.id == attachment_id, Attachment.ticket_id == ticket.id)
    attachment = db.session.scalars(query).one_or_none()
    if attachment is None or not public_only:
        return attachment
    entry = db.session.scalars(select(ThreadEntry).where(ThreadEntry.id == attachment.entry_id)).one()
    return attachment if entry.is_public else None


def public_author_names(entries: list[ThreadEntry]) -> dict[int, str]:
    """What the customer sees of who answered: a first name or the team's name."""
    settings = tenant_settings()
    ids = {entry.author_user_id for entry in entries if entry.author_user_id}
    if not ids:
        return {}
    if settings.agent_display == AgentDisplay.TEAM:
        return dict.fromkeys(ids, settings.team_name)
    users = db.session.scalars(select(User).where(User.id.in_(ids)))
    return {user.id: (user.display_name.split() or [settings.team_name])[0] for user in users}


def add_entry(
    ticket: Ticket,
    kind: EntryKind,
    *,
    author_kind: str,
    author: User | None = None,
    body: str = "",
    details: dict | None = None,
) -> ThreadEntry:
    """An entry in the ticket's thread, flushed (its id is known)."""
    entry = ThreadEntry(
        ticket_id=ticket.id,
        kind=kind,
        author_kind=author_kind,
        author_user_id=author.id if author else None,
        body=body,
        details=details or {},
    )
    db.session.add(entry)
    db.session.flush()
    _touch(ticket)
    return entry


def write_first_message(ticket: Ticket, body: str, *, author_kind: str, author: User | None) -> ThreadEntry:
    """The message a ticket just inserted is opened with: one Core INSERT, and an object
    outside the session for the caller to read (nothing changes it in this request;
    every ticket received writes one). Indexed for search with the ticket
    (``search.index_on_insert``, ``search.index_inserted``)."""
    row = {
        "ticket_id": ticket.id,
        "kind": EntryKind.INBOUND_MESSAGE,
        "author_kind": author_kind,
        "author_user_id": author.id if author else None,
        "body": body,
        "details": {},
        "created_at": ticket.created_at,
    }
    ((entry_id,),) = insert_rows(ThreadEntry, [row], ThreadEntry.id)
    search.index_inserted(db.session(), ticket, body)
    return ThreadEntry(id=entry_id, tenant_id=ticket.tenant_id, **row)


def _touch(ticket: Ticket) -> None:
    """Its last activity is now (for a ticket received in this transaction, created_at
    says it already)."""
    if ticket.id not in db.session.info.get(RECEIVED_KEY, ()):
        ticket.updated_at = utcnow()


def attach(ticket: Ticket, entry: ThreadEntry, uploads: list[Upload], actor: Actor) -> list[Attachment]:
    check_uploads(uploads)
    attached = []
    for upload in uploads:
        try:
            stored = store(ticket.tenant_id, upload.content, upload.filename)
        except RefusedFile:
            raise DomainError(
                _l(
                    "%(name)s is not an accepted file type (PDF, PNG, JPEG, text, email, MP3, WAV or M4A).",
                    name=upload.filename or "?",
                ),
                "attachments",
            ) from None
        attachment = Attachment(
            ticket_id=ticket.id,
            entry_id=entry.id,
            sha256=stored.sha256,
            size=stored.size,
            content_type=stored.content_type,
            filename=stored.filename,
        )
        db.session.add(attachment)
        db.session.flush()
        record(
            "attachment.added",
            "ticket",
            ticket.id,
            actor=actor,
            data={
                "attachment_id": attachment.id,
                "entry_id": entry.id,
                "sha256": stored.sha256,
                "size": stored.size,
                "content_type": stored.content_type,
            },
        )
        attached.append(attachment)
    return attached


MESSAGE_ACTIONS = {
    EntryKind.INBOUND_MESSAGE: "ticket.message_received",
    EntryKind.PUBLIC_REPLY: "ticket.replied",
    EntryKind.INTERNAL_NOTE: "ticket.note_added",
}


def add_message(
    ticket: Ticket,
    kind: EntryKind,
    body: str,
    *,
    actor: Actor,
    author: User | None = None,
    uploads: list[Upload] = (),
    subject: str | None = None,
    **audit_data,
) -> ThreadEntry:
    """A written message in the thread, its files, and its audit event (the body as a
    digest): the one way a message is added, whoever writes it. ``subject``: an email's."""
    details = {**via(actor), **({"subject": subject[:300]} if subject else {})}
    entry = add_entry(
        ticket, kind, author_kind=author_kind_of(actor), author=author, body=body, details=details
    )
    message_added(ticket, entry, actor=actor, uploads=uploads, **audit_data)
    return entry


def via(actor: Actor) -> dict:
    """What an entry says of an actor that is not a person: the API key's label."""
    return {"via": actor.label} if actor.kind == "api_key" else {}


def author_kind_of(actor: Actor) -> str:
    return "customer" if actor.kind == "customer" else "staff"


def message_added(
    ticket: Ticket, entry: ThreadEntry, *, actor: Actor, uploads: list[Upload] = (), **audit_data
) -> None:
    """The audit event of a message just written (its id known), and its files."""
    record(
        MESSAGE_ACTIONS[EntryKind(entry.kind)],
        "ticket",
        ticket.id,
        actor=actor,
        data={"entry_id": entry.id, "body_sha256": digest(entry.body), **audit_data},
    )
    attach(ticket, entry, list(uploads), actor)


def add_event_entry(
    ticket: Ticket, details: dict, *, user: User, actor: Actor, body: str = "", uploads: list[Upload] = ()
) -> tuple[ThreadEntry, list[Attachment]]:
    """A staff-only event in the thread (a payout recorded), with its files; ``body`` is
    the line the thread shows for it."""
    entry = add_entry(
        ticket, EntryKind.SYSTEM_EVENT, author_kind="staff", author=user, body=body, details=details
    )
    return entry, attach(ticket, entry, list(uploads), actor)


def notify_customer(
    ticket: Ticket,
    template: str,
    *,
    actor: Actor,
    message: str = "",
    ticket_clocks: list[Clock] | None = None,
) -> None:
    """Email the requester (if they gave an address for this ticket) in their language,
    with a tracking link minted when it is sent; the email's copy goes into the thread.
    ``ticket_clocks``: its clocks, when the caller has them (a receipt states the deadlines)."""
    requester = ticket.requester
    if not requester.email:
        return
    subject, body = emails.compose(
        template, ticket=ticket, message=message, link=TRACKING_LINK_SLOT, clocks=ticket_clocks
    )
    outbox_id = notify.queue_email(
        to=requester.email,
        subject=subject,
        body=body,
        locale=requester.locale,
        ticket_id=ticket.id,
        actor=actor,
        automatic=emails.AUTOMATIC.get(template),
    )
    # The email's copy in the thread: nothing reads it back in this request, so one Core
    # INSERT, without an object for the session to flush (every receipt writes one).
    copy = {
        "ticket_id": ticket.id,
        "kind": EntryKind.OUTBOUND_EMAIL,
        "author_kind": "system",
        "body": readable(body),
        "details": {"outbox_id": outbox_id, "to": requester.email, "subject": subject},
    }
    insert_rows(ThreadEntry, [copy])
    _touch(ticket)


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
@at_outermost
def _forget_received(session: Session, *args) -> None:
    session.info.pop(RECEIVED_KEY, None)
