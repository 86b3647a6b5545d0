"""Many tickets at once: a change asked for the tickets chosen in the queue (or every
ticket its filter matches), each user's saved queue views, and the queue as CSV.

A bulk change is a row (``BulkRun``) and a job: the job works through the tickets in
batches, each ticket's change through the same service call as the ticket page makes,
so each is its own audit event, by the person who asked. A ticket the change does not
apply to (a refund still owed when closing, a closed ticket's note) is left as it was,
with the reason, in the requester's language. The job resumes where it stopped if it
is run again.
"""

import csv
import io
from collections.abc import Iterator

from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from crm import jobs
from crm.audit.chain import digest
from crm.audit.service import Actor, record
from crm.auth.models import User
from crm.columns import utcnow
from crm.errors import DomainError, NotFound
from crm.extensions import db
from crm.reports.tables import spreadsheet_cell
from crm.tickets import queue, staff_actions
from crm.tickets.input_checks import check_text
from crm.tickets.lookup import list_assignable_users
from crm.tickets.models import BulkRun, Priority, SavedView, Status, Ticket
from crm.tickets.service import MAX_DESCRIPTION
from tenants import current_tenant

ACTIONS = ("assign", "priority", "note", "close")
MAX_TICKETS = 10_000
BATCH = 50
MAX_VIEWS = 20
EXPORT_BATCH = 500


def _checked_value(action: str, value: str | None) -> str | None:
    if action == "assign":
        if value == queue.UNASSIGNED:
            return value
        if value not in {str(user.id) for user in list_assignable_users()}:
            raise DomainError(_l("Choose who gets the tickets."), "assignee")
        return value
    if action == "priority":
        if value not in set(Priority):
            raise DomainError(_l("Choose a priority from the list."), "priority")
        return value
    if action == "note":
        return check_text(value, "note", MAX_DESCRIPTION, required=True)
    if action == "close":
        return None
    raise DomainError(_l("Choose what to change."), "action")


def start(action: str, value: str | None, ticket_ids: list[int], *, user: User, actor: Actor) -> BulkRun:
    """Ask for ``action`` on the tickets; the job runs after the commit."""
    value = _checked_value(action, value)
    ticket_ids = list(dict.fromkeys(ticket_ids))
    if not ticket_ids:
        raise DomainError(_l("Choose at least one ticket."), "tickets")
    if len(ticket_ids) > MAX_TICKETS:
        raise DomainError(_l("At most %(n)d tickets at once; narrow the filter.", n=MAX_TICKETS), "tickets")
    run = BulkRun(requested_by_id=user.id, action=action, value=value, ticket_ids=ticket_ids, skipped=[])
    db.session.add(run)
    db.session.flush()
    shown = {"note_sha256": digest(value)} if action == "note" else {"value": value}
    record(
        "tickets.bulk_requested",
        "bulk_run",
        run.id,
        actor=actor,
        data={"action": action, "tickets": len(ticket_ids), **shown},
    )
    jobs.enqueue(run_bulk, run.id, actor.ip)
    return run


def run_bulk(run_id: int, ip: str | None = None) -> None:
    """The job: apply the run's change to its tickets not done yet, a batch per commit."""
    run = db.session.get(BulkRun, run_id)
    if run is None or run.status == "done":
        return
    user = db.session.get(User, run.requested_by_id)
    run.status = "running"
    db.session.commit()
    with force_locale(user.locale or current_tenant().locale or "en"):
        while run.done < run.total:
            batch = run.ticket_ids[run.done : run.done + BATCH]
            found = {
                ticket.id: ticket for ticket in db.session.scalars(select(Ticket).where(Ticket.id.in_(batch)))
            }
            skipped = []
            for ticket_id in batch:
                ticket = found.get(ticket_id)
                if ticket is None:
                    continue  # merged away or never this tenant's: nothing to change
                try:
                    with db.session.begin_nested():
                        run.changed += _apply(run, ticket, user, ip)
                except DomainError as error:
                    skipped.append(
                        {"number": ticket.number, "reference": ticket.reference, "reason": str(error.message)}
                    )
            run.skipped = [*run.skipped, *skipped]
            run.done += len(batch)
            db.session.commit()
    run.status, run.finished_at = "done", utcnow()


def _apply(run: BulkRun, ticket: Ticket, user: User, ip: str | None) -> bool:
    """Make the run's change to one ticket; whether it changed anything."""
    if run.action == "assign":
        wanted = None if run.value == queue.UNASSIGNED else int(run.value)
        if ticket.assignee_id == wanted:
            return False
        staff_actions.assign(ticket, wanted, user=user, ip=ip)
    elif run.action == "priority":
        if ticket.priority == run.value:
            return False
        staff_actions.set_priority(ticket, run.value, user=user, ip=ip)
    elif run.action == "note":
        staff_actions.add_note(ticket, run.value, user=user, ip=ip)
    else:
        if ticket.status == Status.CLOSED:
            return False
        staff_actions.close(ticket, user=user, ip=ip)
    return True


def run_of(run_id: int) -> BulkRun | None:
    return db.session.get(BulkRun, run_id)


def matching_ids(query: queue.QueueQuery, *, user_id: int, country: str) -> list[int]:
    """Every ticket the queue's filter matches (up to one more than MAX_TICKETS)."""
    return [ticket.id for ticket in _matching(query, user_id=user_id, country=country, limit=MAX_TICKETS + 1)]


def _matching(query: queue.QueueQuery, *, user_id: int, country: str, limit: int) -> Iterator[Ticket]:
    after, given = None, 0
    while given < limit:
        page = queue.queue_page(query, user_id=user_id, country=country, after=after, limit=EXPORT_BATCH)
        yield from page.tickets[: limit - given]
        given += len(page.tickets)
        for ticket in page.tickets:
            db.session.expunge(ticket)  # keep memory flat
        if page.next_cursor is None:
            return
        after = page.next_cursor


def ids_of_numbers(numbers: list[int]) -> list[int]:
    return list(
        db.session.scalars(select(Ticket.id).where(Ticket.number.in_(numbers)).order_by(Ticket.number))
    )


# --- saved views ------------------------------------------------------------------------


def views_of(user: User) -> list[SavedView]:
    return list(
        db.session.scalars(select(SavedView).where(SavedView.user_id == user.id).order_by(SavedView.name))
    )


def save_view(user: User, name: str, params: dict[str, str], *, actor: Actor) -> SavedView:
    """Save the queue's filter under ``name`` (the same name again replaces it)."""
    name = check_text(name, "name", 60, required=True)
    existing = db.session.scalars(
        select(SavedView).where(SavedView.user_id == user.id, SavedView.name == name)
    ).one_or_none()
    if existing is None and len(views_of(user)) >= MAX_VIEWS:
        raise DomainError(_l("You have %(n)d saved views already; delete one first.", n=MAX_VIEWS), "name")
    view = existing or SavedView(user_id=user.id, name=name)
    view.params = params
    if existing is None:
        db.session.add(view)
    db.session.flush()
    record(
        "queue.view_saved",
        "saved_view",
        view.id,
        actor=actor,
        data={"name_sha256": digest(name), "params": queue.audited_params(params)},
    )
    return view


def delete_view(user: User, view_id: int, *, actor: Actor) -> None:
    view = db.session.get(SavedView, view_id)
    if view is None or view.user_id != user.id:
        raise NotFound(_l("There is no such view."))
    db.session.delete(view)
    record("queue.view_deleted", "saved_view", view_id, actor=actor)


# --- CSV ----------------------------------------------------------------------------------


def record_export(params: dict[str, str], *, actor: Actor) -> None:
    """The export's audit event: who took which filter's tickets (the search as a digest)."""
    record(
        "tickets.exported", "ticket_queue", None, actor=actor, data={"params": queue.audited_params(params)}
    )


def csv_lines(
    query: queue.QueueQuery, *, user_id: int, country: str, header: list[str], row
) -> Iterator[str]:
    """The queue's every match as CSV text, a few hundred rows at a time: a byte-order
    mark first (spreadsheet programs then read UTF-8, Chinese included), then the header
    and one line per ticket made by ``row(ticket)``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")
    writer.writerow(header)
    for count, ticket in enumerate(_matching(query, user_id=user_id, country=country, limit=10**9), start=1):
        writer.writerow([spreadsheet_cell(value) for value in row(ticket)])
        if count % EXPORT_BATCH == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
