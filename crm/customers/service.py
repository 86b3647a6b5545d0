"""Finding and recording customers. One person's requests come together under one
record, for history: the same name with the same normalised phone number, else email.
A customer record never decides where mail goes (see ``link_customer``)."""

import phonenumbers
from flask_babel import lazy_gettext as _l
from sqlalchemy import or_, select

from crm.audit.chain import digest
from crm.audit.service import Actor, record
from crm.customers.models import Customer
from crm.errors import DomainError
from crm.extensions import db, insert_new


def normalise_phone(raw: str, region: str) -> str:
    """E.164 form of a phone number typed with or without its country code."""
    try:
        number = phonenumbers.parse((raw or "").strip(), region)
    except phonenumbers.NumberParseException:
        raise DomainError(_l("Enter a valid phone number."), "phone") from None
    if not phonenumbers.is_valid_number(number):
        raise DomainError(_l("Enter a valid phone number."), "phone")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def find_customer_id(name: str, phone: str | None, email: str | None) -> int | None:
    """The id of the tenant's customer with this name and phone, else this name and email
    (one query)."""
    matches = [
        column == value for column, value in ((Customer.phone, phone), (Customer.email, email)) if value
    ]
    if not matches:
        return None
    by_phone_first = (Customer.phone == phone).desc() if phone else Customer.id
    query = (
        select(Customer.id)
        .where(Customer.name == name, or_(*matches))
        .order_by(by_phone_first, Customer.id)
        .limit(1)
    )
    return db.session.scalar(query)


def create_customer(
    *, name: str, phone: str | None, email: str | None, account_ref: str | None, locale: str, actor: Actor
) -> int:
    """A new customer record; its id. One INSERT for the tenant in context, without an
    object in the session: a request files a customer under a ticket and reads no more."""
    row = {"name": name, "phone": phone, "email": email, "account_ref": account_ref, "locale": locale}
    ((customer_id,),) = insert_new(Customer, [row], Customer.id)
    record(
        "customer.created",
        "customer",
        customer_id,
        actor=actor,
        data={
            "name_sha256": digest(name),
            "phone_sha256": digest(phone) if phone else None,
            "email_sha256": digest(email) if email else None,
        },
    )
    return customer_id


def link_customer(
    *, name: str, phone: str | None, email: str | None, account_ref: str | None, locale: str, actor: Actor
) -> int:
    """The id of the customer record a new request is filed under, for its history: the
    one with the same name and phone (else name and email), or a new one.

    Never changes an existing record: anyone can type anyone's phone number, and a
    recycled virtual number reaches a new person. Mail about a ticket goes to the details
    given for that ticket, never to the record's."""
    return find_customer_id(name, phone, email) or create_customer(
        name=name, phone=phone, email=email, account_ref=account_ref, locale=locale, actor=actor
    )
