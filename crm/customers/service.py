"""Finding and recording customers. One person's requests come together under one
record, for history: the same name with the same normalised phone number, else email.
A customer record never decides where mail goes (see ``link_customer``)."""

import functools

import phonenumbers
from flask_babel import lazy_gettext as _l
from sqlalchemy import BindParameter, Insert, Select, bindparam, exists, func, insert, or_, select

from crm.audit.chain import digest
from crm.audit.service import Actor, record
from crm.customers.models import Customer
from crm.errors import DomainError
from crm.extensions import db, insert_new
from crm.leads.models import Lead
from crm.tickets.models import Ticket
from tenants import current_tenant_id


def normalise_phone(raw: str, region: str) -> str:
    """E.164 form of a phone number typed with or without its country code."""
    try:
        number = phonenumbers.parse((raw or "").strip(), region)
    except phonenumbers.NumberParseException:
        raise DomainError(_l("Enter a valid phone number."), "phone") from None
    if not phonenumbers.is_valid_number(number):
        raise DomainError(_l("Enter a valid phone number."), "phone")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


_COLUMNS = Customer.__table__.c
_NEW_ROW = ("tenant_id", "name", "phone", "email", "account_ref", "locale")


def _given_name(key: str) -> str:
    """The parameter for the value given for column ``key``, named apart from it: an
    INSERT reserves the columns' own names."""
    return f"given_{key}"


def _given(key: str) -> BindParameter:
    return bindparam(_given_name(key), type_=_COLUMNS[key].type)


@functools.cache
def _link_statements(by_phone: bool, by_email: bool) -> tuple[Select, Insert]:
    """The id of the tenant's customer with this name and phone, else this name and
    email; and the INSERT of a new record that writes only when that finds none. Built
    once per shape (the parameters are bound per request), so SQLAlchemy builds and keys
    them once: every form submission runs one."""
    wanted = {"phone": by_phone, "email": by_email}
    matches = [_COLUMNS[key] == _given(key) for key, asked in wanted.items() if asked]
    by_phone_first = (_COLUMNS.phone == _given("phone")).desc() if by_phone else _COLUMNS.id
    match = (
        select(_COLUMNS.id)
        .where(
            _COLUMNS.tenant_id == _given("tenant_id"),
            _COLUMNS.name == _given("name"),
            or_(*matches),
            _COLUMNS.merged_into_id.is_(None),
        )
        .order_by(by_phone_first, _COLUMNS.id)
        .limit(1)
    )
    new_row = select(*(_given(key) for key in _NEW_ROW))
    unless_known = new_row.where(~exists(match))
    return match, insert(Customer.__table__).from_select(_NEW_ROW, unless_known).returning(_COLUMNS.id)


def create_customer(
    *, name: str, phone: str | None, email: str | None, account_ref: str | None, locale: str, actor: Actor
) -> int:
    """A new customer record; its id. One INSERT for the tenant in context, without an
    object in the session: a request files a customer under a ticket and reads no more."""
    row = {"name": name, "phone": phone, "email": email, "account_ref": account_ref, "locale": locale}
    ((customer_id,),) = insert_new(Customer, [row], Customer.id)
    _created(customer_id, row, actor)
    return customer_id


def _created(customer_id: int, row: dict, actor: Actor) -> None:
    record(
        "customer.created",
        "customer",
        customer_id,
        actor=actor,
        data={
            "name_sha256": digest(row["name"]),
            "phone_sha256": digest(row["phone"]) if row["phone"] else None,
            "email_sha256": digest(row["email"]) if row["email"] else None,
        },
    )


def link_customer(
    *, name: str, phone: str | None, email: str | None, account_ref: str | None, locale: str, actor: Actor
) -> int:
    """The id of the customer record a new request is filed under, for its history: the
    one with the same name and phone (else name and email), or a new one.

    Never changes an existing record: anyone can type anyone's phone number, and a
    recycled virtual number reaches a new person. Mail about a ticket goes to the details
    given for that ticket, never to the record's.

    Core statements on the session's connection, scoped to the tenant here: every form
    submission asks. A new person's record (most requests) is written by the statement
    that finds none, INSERT … SELECT … WHERE NOT EXISTS; a known one is then read."""
    row = {"name": name, "phone": phone, "email": email, "account_ref": account_ref, "locale": locale}
    if not (phone or email):
        return create_customer(**row, actor=actor)
    match, insert_unless_known = _link_statements(bool(phone), bool(email))
    values = {_given_name(key): value for key, value in {**row, "tenant_id": current_tenant_id()}.items()}
    db.session.flush()  # as the ORM would first
    connection = db.session.connection()
    customer_id = connection.execute(insert_unless_known, values).scalar()
    if customer_id is None:
        return connection.execute(match, values).scalar_one()
    _created(customer_id, row, actor)
    return customer_id


def merge_customers(source: Customer, target: Customer, *, actor: Actor) -> dict[str, list[int]]:
    """Two records of one person: ``source``'s tickets and leads go to ``target``, and
    ``source`` is kept, pointing at ``target``, and never matched again. Audited with
    every id moved, so a split can undo it request by request. Nothing a customer gave
    is changed: each request keeps its own details."""
    if source.id == target.id:
        raise DomainError(_l("Choose another customer to merge into."), "target")
    moved = {}
    for name, model in (("ticket_ids", Ticket), ("lead_ids", Lead)):
        rows = list(db.session.scalars(select(model).where(model.customer_id == source.id)))
        for row in rows:
            row.customer_id = target.id
        moved[name] = [row.id for row in rows]
    record(
        "customer.merged", "customer", target.id, actor=actor, data={"from_customer_id": source.id, **moved}
    )
    source.merged_into_id = target.id
    return moved


def split_off(ticket: Ticket, *, actor: Actor) -> int:
    """A request filed under the wrong person: it gets a customer record of its own, made
    from the details given on it; the new record's id."""
    before = ticket.customer_id
    customer_id = create_customer(
        name=ticket.requester_name,
        phone=ticket.requester_phone,
        email=ticket.requester_email,
        account_ref=ticket.account_ref,
        locale=ticket.requester_locale,
        actor=actor,
    )
    ticket.customer_id = customer_id
    record(
        "customer.split",
        "ticket",
        ticket.id,
        actor=actor,
        data={"from_customer_id": before, "to_customer_id": customer_id},
    )
    return customer_id


def live_customer(customer_id: int | None) -> Customer | None:
    """The tenant's customer record with that number, unless it was merged into another
    (its page leads there instead)."""
    customer = db.session.get(Customer, customer_id) if customer_id is not None else None
    return customer if customer is not None and customer.merged_into_id is None else None


def ticket_counts(customer_ids: list[int]) -> dict[int, int]:
    """How many tickets each of these customers has (one query)."""
    query = (
        select(Ticket.customer_id, func.count())
        .where(Ticket.customer_id.in_(customer_ids))
        .group_by(Ticket.customer_id)
    )
    return dict(db.session.execute(query).all())


def requests_of(customer: Customer) -> tuple[list[Ticket], list[Lead]]:
    """Every ticket filed under the record, newest first, and every lead of the same
    person: won into it, or from its phone or email."""
    tickets = db.session.scalars(
        select(Ticket).where(Ticket.customer_id == customer.id).order_by(Ticket.id.desc())
    )
    same_person = [Lead.customer_id == customer.id]
    same_person += [Lead.phone == customer.phone] if customer.phone else []
    same_person += [Lead.email == customer.email] if customer.email else []
    leads = db.session.scalars(select(Lead).where(or_(*same_person)).order_by(Lead.id.desc()))
    return list(tickets), list(leads)
