"""The ticket queue: which tickets a view, its filters and a search select, a page at a time.

Pages are keyset pages: the cursor is the last row's (sort key, id), so a page is a range
scan of the (tenant_id, status, created_at, id) index or one of its siblings, and page
2,000 costs what page 1 does. There is no OFFSET.
"""

import re
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, literal, literal_column, or_, select, tuple_, union_all

from crm.audit.chain import digest
from crm.columns import UTCDateTime, utcnow
from crm.customers.models import Customer
from crm.customers.service import normalise_phone
from crm.errors import DomainError
from crm.extensions import db
from crm.sla.models import Clock, ClockState
from crm.tickets import search
from crm.tickets.models import OPEN_STATES, Status, Ticket

PAGE_SIZE = 50
DEFAULT_VIEW = "open"
DEFAULT_SORT = "oldest"
UNASSIGNED = "none"
# How many customers a search by name, phone or email may match; more is a vaguer
# search than anyone reads through.
CUSTOMER_MATCH_LIMIT = 500

# Each view is a preset; an explicit status or assignee filter takes the place of the
# preset's statuses or assignee.
VIEW_STATUSES: dict[str, frozenset[Status] | None] = {
    "mine": OPEN_STATES,
    "unassigned": OPEN_STATES,
    "needs_manager": OPEN_STATES,
    "breaching_soon": OPEN_STATES,
    "breached": OPEN_STATES,
    "open": frozenset({Status.NEW, Status.OPEN}),
    "awaiting_customer": frozenset({Status.AWAITING_CUSTOMER}),
    "pending_approval": frozenset({Status.PENDING_APPROVAL}),
    "resolved": frozenset({Status.RESOLVED}),
    "closed": frozenset({Status.CLOSED}),
    "all": None,
}
VIEWS = tuple(VIEW_STATUSES)
# Views of tickets by their nearest running deadline (``due_at``) and its warning time.
DUE_VIEWS = frozenset({"breaching_soon", "breached"})
SORTS = ("oldest", "newest", "due")
# The parameters of a queue's address that a page link, a saved view and an export keep.
QUEUE_PARAMS = (
    *("view", "q", "status", "kind", "priority", "reason", "assignee", "sort"),
    *("clock", "outcome", "due_from", "due_to"),
)


def kept_params(source) -> dict[str, str]:
    """The queue's parameters in ``source`` (an address's or a form's), without the rest."""
    return {key: source[key] for key in QUEUE_PARAMS if source.get(key)}


def audited_params(params: dict[str, str]) -> dict[str, str]:
    """The queue's parameters as the audit trail keeps them: a search may be a phone
    number or a name, so only its digest."""
    return {**params, "q": digest(params["q"])} if "q" in params else params


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Where a ticket with no running deadline sorts under "due": last.
NO_DEADLINE = datetime(9999, 1, 1, tzinfo=UTC)
TICKET_NUMBER_RE = re.compile(r"#?(?:[A-Za-z]{1,8}[\s\-]*)?(\d{1,15})")


@dataclass(frozen=True)
class QueueQuery:
    view: str = DEFAULT_VIEW
    q: str = ""
    status: str | None = None
    kind: str | None = None
    priority: str | None = None
    reason: str | None = None
    assignee: int | str | None = None  # a user id, or UNASSIGNED
    sort: str = DEFAULT_SORT
    # A report's number, opened: the tickets with a clock of ``clock`` due in [due_from,
    # due_to) and, if given, of that ``outcome`` (see ``CLOCK_OUTCOMES``).
    clock: str | None = None
    outcome: str | None = None
    due_from: datetime | None = None
    due_to: datetime | None = None


@dataclass(frozen=True)
class Cursor:
    """Where a page ends: the last ticket's sort key and id. In a URL it reads
    ``<microseconds since 1970>-<id>``."""

    key: datetime
    id: int

    def encode(self) -> str:
        return f"{(self.key - EPOCH) // timedelta(microseconds=1)}-{self.id}"

    @classmethod
    def decode(cls, text: str) -> "Cursor":
        micros, _, ticket_id = (text or "").partition("-")
        if not (micros.isdigit() and ticket_id.isdigit()) or len(micros) > 18 or len(ticket_id) > 18:
            raise ValueError(text)
        try:
            return cls(EPOCH + timedelta(microseconds=int(micros)), int(ticket_id))
        except OverflowError:  # past the year 9999
            raise ValueError(text) from None


@dataclass(frozen=True)
class QueuePage:
    tickets: list[Ticket]
    next_cursor: Cursor | None


def ticket_number_in(text: str) -> int | None:
    """The number in a reference as people type it: ``RF-1042``, ``rf 1042``, ``#1042``."""
    match = TICKET_NUMBER_RE.fullmatch((text or "").strip())
    return int(match.group(1)) if match else None


def _sort_key(sort: str) -> ColumnElement:
    if sort == "due":
        return func.coalesce(Ticket.due_at, literal(NO_DEADLINE, UTCDateTime()))
    return Ticket.created_at


def _sort_value(ticket: Ticket, sort: str) -> datetime:
    if sort == "due":
        return ticket.due_at or NO_DEADLINE
    return ticket.created_at


def matching_customer_ids(q: str, country: str) -> list[int]:
    """Customers whose phone ends in the digits of ``q`` (or equals it read as a number of
    ``country``), whose account reference is ``q``, or, when ``q`` reads as a
    name (no "@", not a phone number or a ticket's reference), whose name contains it.

    A ticket's requester has its customer's name and phone (a request is filed under the
    record with both the same), so these find tickets by what was typed for them; its
    email can differ, and is searched on the ticket itself.

    Only the name needs every customer of the tenant read; the rest go by index (a
    phone's last four digits are kept in ``phone_tail``)."""
    conditions = [Customer.account_ref == q]
    digits = re.sub(r"\D", "", q)
    if "@" in q:
        pass  # an email is searched on the tickets themselves
    elif len(digits) >= 4 and re.fullmatch(r"[\d\s()+.\-]+", q):
        conditions.append(
            and_(Customer.phone_tail == digits[-4:], Customer.phone.endswith(digits, autoescape=True))
        )
        with suppress(DomainError):  # not a whole number: the suffix still matches
            conditions.append(Customer.phone == normalise_phone(q, country))
    elif ticket_number_in(q) is None:
        # Text without letter case (a Chinese name) is matched as it is: lowering every
        # name the tenant has costs the database 3-5 times the match itself.
        caseless = q.lower() == q.upper()
        contains = Customer.name.contains if caseless else Customer.name.icontains
        conditions.append(contains(q, autoescape=True))
    query = select(Customer.id).where(or_(*conditions)).limit(CUSTOMER_MATCH_LIMIT)
    return list(db.session.scalars(query))


def _by_identifiers(q: str, country: str) -> ColumnElement:
    """Tickets ``q`` names: by reference, account, email, or its customer's phone or name."""
    conditions = [Ticket.account_ref == q]
    if "@" in q:  # the address given for the ticket, whichever customer record it is under
        conditions.append(Ticket.requester_email == q.lower())
    number = ticket_number_in(q)
    if number is not None:
        conditions.append(Ticket.number == number)
    customer_ids = matching_customer_ids(q, country)
    if customer_ids:
        conditions.append(Ticket.customer_id.in_(customer_ids))
    return or_(*conditions)


CLOCK_OUTCOMES = ("met_on_time", "met_late", "breached_open", "not_yet_due")


def _clock_outcome(outcome: str | None) -> list[ColumnElement]:
    """The conditions on a clock for one of a report's columns (as ``crm.reports.sla``
    counts them)."""
    met = Clock.state == ClockState.MET
    if outcome == "met_on_time":
        return [met, Clock.breached_at.is_(None)]
    if outcome == "met_late":
        return [met, Clock.breached_at.is_not(None)]
    if outcome == "breached_open":
        return [Clock.state != ClockState.MET, (Clock.breached_at.is_not(None)) | (Clock.due_at <= utcnow())]
    if outcome == "not_yet_due":
        return [Clock.state != ClockState.MET, Clock.breached_at.is_(None), Clock.due_at > utcnow()]
    return []


def _with_clock(query: QueueQuery) -> ColumnElement:
    conditions = [
        Clock.subject_type == "ticket",
        Clock.metric == query.clock,
        Clock.alerts.is_(True),
        Clock.state != ClockState.STOPPED,
        *_clock_outcome(query.outcome),
    ]
    if query.due_from:
        conditions.append(Clock.due_at >= query.due_from)
    if query.due_to:
        conditions.append(Clock.due_at < query.due_to)
    return Ticket.id.in_(select(Clock.subject_id).where(*conditions))


def _filters(query: QueueQuery, *, user_id: int, country: str) -> list[ColumnElement]:
    """Everything the query asks of a ticket except its status."""
    conditions = []
    assignee = query.assignee
    if assignee is None and query.view == "mine":
        assignee = user_id
    elif assignee is None and query.view == "unassigned":
        assignee = UNASSIGNED
    if query.view == "needs_manager":
        conditions.append(Ticket.needs_manager.is_(True))
    elif query.view == "breached":
        conditions.append(Ticket.due_at <= utcnow())
    elif query.view == "breaching_soon":
        now = utcnow()
        conditions.extend((Ticket.warn_at <= now, Ticket.due_at > now))
    if assignee == UNASSIGNED:
        conditions.append(Ticket.assignee_id.is_(None))
    elif assignee is not None:
        conditions.append(Ticket.assignee_id == assignee)
    for column, value in (
        (Ticket.kind, query.kind),
        (Ticket.priority, query.priority),
        (Ticket.reason, query.reason),
    ):
        if value:
            conditions.append(column == value)
    if query.clock:
        conditions.append(_with_clock(query))
    return conditions


def queue_page(
    query: QueueQuery, *, user_id: int, country: str, after: Cursor | None = None, limit: int = PAGE_SIZE
) -> QueuePage:
    """One page of the queue ``query`` describes, as ``user_id`` sees it ("mine")."""
    statuses = sorted({Status(query.status)} if query.status else VIEW_STATUSES[query.view] or ())
    conditions = _filters(query, user_id=user_id, country=country)
    key = _sort_key(query.sort)
    descending = query.sort == "newest"
    if after is not None:
        position = tuple_(key, Ticket.id)
        bound = tuple_(literal(after.key, UTCDateTime()), literal(after.id, Ticket.id.type))
        conditions.append(position < bound if descending else position > bound)
    order = _order(key, Ticket.id, descending)
    # A search is two ways of finding tickets: by what names them (indexes on their
    # columns) and by what was said (the text index). Each way is a branch of its own,
    # as is each status of a view of several: "status IN (a, b) ORDER BY created_at
    # LIMIT n", or an OR of a column and the text, would make the database read every
    # ticket that matches and sort them. One branch is a range scan of (tenant_id,
    # [assignee_id,] status, created_at, id), or a text match, that stops after n rows;
    # the outer query merges the branches' few rows.
    searches: list[ColumnElement | search.TextQuery | None] = [None]
    if query.q:
        searches = [_by_identifiers(query.q, country)]
        if said := search.text_query(query.q):
            searches.append(said)
    status_conditions = [[Ticket.status == status] for status in statuses] or [[]]
    branches = [
        _branch([*conditions, *by_status], way, key, descending, limit + 1)
        for by_status in status_conditions
        for way in searches
    ]
    if len(branches) == 1 and not isinstance(searches[0], search.TextQuery):
        named = [] if searches[0] is None else [searches[0]]
        statement = select(Ticket).where(*conditions, *status_conditions[0], *named)
    else:
        ids = union_all(*(select(branch.subquery().c.id) for branch in branches))
        statement = select(Ticket).where(Ticket.id.in_(ids))
    rows = list(db.session.scalars(statement.order_by(*order).limit(limit + 1)))
    page = rows[:limit]
    more = len(rows) > limit
    return QueuePage(page, Cursor(_sort_value(page[-1], query.sort), page[-1].id) if more else None)


def _order(key: ColumnElement, ticket_id: ColumnElement, descending: bool) -> tuple:
    return (key.desc(), ticket_id.desc()) if descending else (key.asc(), ticket_id.asc())


# How many tickets, in page order, a text search reads before it asks the text index
# instead: a word in at least about 1% of them fills a page from there, in a few
# milliseconds, however common; a rarer one is looked up in the index (a few matches,
# sorted). The database's own estimate of how common a word is, or a phrase, misleads
# it both ways (measured in docs/performance.md).
TEXT_PROBE_ROWS = 5_000


def _branch(conditions: list, way, key: ColumnElement, descending: bool, limit: int):
    """The first ``limit`` ids, in page order, of the tickets meeting ``conditions`` and
    found ``way`` (a condition, a text search, or None: every ticket)."""
    order = _order(key, Ticket.id, descending)
    if not isinstance(way, search.TextQuery):
        named = [] if way is None else [way]
        return select(Ticket.id).where(*conditions, *named).order_by(*order).limit(limit)
    if not way.postgres:  # SQLite's FTS5 answers by ticket id; its planner has no such trap
        return select(Ticket.id).where(*conditions, way.matches()).order_by(*order).limit(limit)
    walked = (
        select(Ticket.id, key.label("key"), search.SEARCH_VECTOR.label("vector"))
        .where(*conditions)
        .order_by(*order)
        .limit(TEXT_PROBE_ROWS)
        .subquery()
    )
    probe = (
        select(walked.c.id)
        .where(way.matches(walked.c.vector))
        .order_by(*_order(walked.c.key, walked.c.id, descending))
        .limit(limit)
        .cte()
        .prefix_with("MATERIALIZED")
    )
    # Sorted by an expression, so the database cannot choose to walk the tickets again;
    # asked only when the probe did not fill the page.
    unwalkable = key.op("+")(literal_column("interval '0 s'"))
    looked_up = (
        select(Ticket.id)
        .where(*conditions, way.matches(), select(func.count()).select_from(probe).scalar_subquery() < limit)
        .order_by(*_order(unwalkable, Ticket.id, descending))
        .limit(limit)
    )
    return union_all(select(probe.c.id), looked_up)


def desk_summary(user_id: int) -> dict[str, int]:
    """What the start page shows: open tickets by status, the user's own, and those a
    manager must look at (one pass over the tenant's open tickets, by index)."""
    rows = db.session.execute(
        select(Ticket.status, Ticket.assignee_id, Ticket.needs_manager, func.count())
        .where(Ticket.status.in_(OPEN_STATES))
        .group_by(Ticket.status, Ticket.assignee_id, Ticket.needs_manager)
    ).all()
    summary = dict.fromkeys((*OPEN_STATES, "mine", "needs_manager"), 0)
    for status, assignee_id, needs_manager, count in rows:
        summary[status] += count
        summary["mine"] += count if assignee_id == user_id else 0
        summary["needs_manager"] += count if needs_manager else 0
    # Deadlines: a range scan of (tenant_id, due_at) up to the soonest warnings' reach.
    now = utcnow()
    overdue = Ticket.due_at <= now
    soon = (Ticket.warn_at <= now) & (Ticket.due_at > now)
    breached, breaching = db.session.execute(
        select(func.count().filter(overdue), func.count().filter(soon)).where(
            Ticket.status.in_(OPEN_STATES), Ticket.due_at.is_not(None)
        )
    ).one()
    summary["breached"], summary["breaching_soon"] = breached, breaching
    return summary
