"""The pipeline's list: which leads a view and a search select, a keyset page at a time
(the same cursors as the ticket queue: the last row's creation time and id)."""

import re
from contextlib import suppress
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, func, literal, or_, select, tuple_

from crm.columns import UTCDateTime, utcnow
from crm.customers.service import normalise_phone
from crm.errors import DomainError
from crm.extensions import db
from crm.leads.models import OPEN_STAGES, Lead, Stage
from crm.tickets.queue import Cursor

PAGE_SIZE = 50
VIEWS = ("mine", "new", "overdue", "all")
DEFAULT_VIEW = "new"
LEAD_NUMBER_RE = re.compile(r"#?(?:[A-Za-z]{1,8}[\s\-]*)?(\d{1,9})")


@dataclass(frozen=True)
class LeadQuery:
    view: str = DEFAULT_VIEW
    q: str = ""
    stage: str | None = None
    assignee: int | None = None


@dataclass(frozen=True)
class LeadPage:
    leads: list[Lead]
    next_cursor: Cursor | None


def _search(q: str, country: str) -> ColumnElement:
    """A reference, a phone (whole, or its last digits), an email, a name or a company."""
    conditions = []
    number = LEAD_NUMBER_RE.fullmatch(q)
    if number:
        conditions.append(Lead.number == int(number.group(1)))
    digits = re.sub(r"\D", "", q)
    if "@" in q:
        conditions.append(Lead.email == q.lower())
    elif len(digits) >= 4 and re.fullmatch(r"[\d\s()+.\-]+", q):
        conditions.append(and_(Lead.phone_tail == digits[-4:], Lead.phone.endswith(digits, autoescape=True)))
        with suppress(DomainError):
            conditions.append(Lead.phone == normalise_phone(q, country))
    elif not number:
        caseless = q.lower() == q.upper()
        for column in (Lead.name, Lead.company):
            conditions.append((column.contains if caseless else column.icontains)(q, autoescape=True))
    return or_(*conditions)


def lead_page(query: LeadQuery, *, user_id: int, country: str, after: Cursor | None = None) -> LeadPage:
    """One page of the view, newest first; "overdue" lists the leads whose first-contact
    promise has passed, most overdue first."""
    conditions = []
    if query.view == "mine":
        conditions += [Lead.assignee_id == user_id, Lead.stage.in_(OPEN_STAGES)]
    elif query.view == "new":
        conditions.append(Lead.stage == Stage.NEW)
    elif query.view == "overdue":
        conditions.append(Lead.first_contact_due_at <= utcnow())
    if query.stage:
        conditions.append(Lead.stage == query.stage)
    if query.assignee is not None:
        conditions.append(Lead.assignee_id == query.assignee)
    q = (query.q or "").strip()
    if q:
        conditions.append(_search(q, country))
    overdue = query.view == "overdue"
    key = Lead.first_contact_due_at if overdue else Lead.created_at
    if after is not None:
        position = tuple_(key, Lead.id)
        bound = tuple_(literal(after.key, UTCDateTime()), literal(after.id, Lead.id.type))
        conditions.append(position > bound if overdue else position < bound)
    order = (key.asc(), Lead.id.asc()) if overdue else (key.desc(), Lead.id.desc())
    rows = list(db.session.scalars(select(Lead).where(*conditions).order_by(*order).limit(PAGE_SIZE + 1)))
    page = rows[:PAGE_SIZE]
    more = len(rows) > PAGE_SIZE
    last = page[-1] if more else None
    return LeadPage(
        page, Cursor(last.first_contact_due_at if overdue else last.created_at, last.id) if last else None
    )


def lead_summary(user_id: int) -> dict[str, int]:
    """The start page's lead counts: new, overdue for first contact, the user's own open."""
    now = utcnow()
    new, mine = db.session.execute(
        select(
            func.count().filter(Lead.stage == Stage.NEW),
            func.count().filter(Lead.assignee_id == user_id),
        ).where(Lead.stage.in_(OPEN_STAGES))
    ).one()
    overdue = db.session.scalar(
        select(func.count()).where(Lead.first_contact_due_at <= now, Lead.first_contact_due_at.is_not(None))
    )
    return {"new": new, "mine": mine, "overdue": overdue}
