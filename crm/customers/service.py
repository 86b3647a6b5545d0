"""Finding and recording customers. One person's requests come together under one
record, matched by normalised phone number, else by email."""

import phonenumbers
from flask_babel import lazy_gettext as _l
from sqlalchemy import or_, select

from crm.audit.chain import digest
from crm.audit.service import Actor, record
from crm.customers.models import Customer
from crm.errors import DomainError
from crm.extensions import db


def normalise_phone(raw: str, region: str) -> str:
    """E.164 form of a phone number typed with or without its country code."""
    try:
        number = phonenumbers.parse((raw or "").strip(), region)
    except phonenumbers.NumberParseException:
        raise DomainError(_l("Enter a valid phone number."), "phone") from None
    if not phonenumbers.is_valid_number(number):
        raise DomainError(_l("Enter a valid phone number."), "phone")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def find_customer(phone: str | None, email: str | None) -> Customer | None:
    """The tenant's customer with this phone, else with this email (one query)."""
    matches = [
        column == value for column, value in ((Customer.phone, phone), (Customer.email, email)) if value
    ]
    if not matches:
        return None
    by_phone_first = (Customer.phone == phone).desc() if phone else Customer.id
    query = select(Customer).where(or_(*matches)).order_by(by_phone_first, Customer.id).limit(1)
    return db.session.scalars(query).first()


def match_or_create(
    *, name: str, phone: str | None, email: str | None, account_ref: str | None, locale: str, actor: Actor
) -> Customer:
    """The existing customer with this phone or email (details filled in where they were
    missing), or a new one."""
    customer = find_customer(phone, email)
    if customer is None:
        customer = Customer(name=name, phone=phone, email=email, account_ref=account_ref, locale=locale)
        db.session.add(customer)
        db.session.flush()
        record(
            "customer.created",
            "customer",
            customer.id,
            actor=actor,
            data={
                "name_sha256": digest(name),
                "phone_sha256": digest(phone) if phone else None,
                "email_sha256": digest(email) if email else None,
            },
        )
        return customer
    filled = {}
    for field, value in (("phone", phone), ("email", email), ("account_ref", account_ref)):
        if value and not getattr(customer, field):
            setattr(customer, field, value)
            filled[f"{field}_sha256"] = digest(value)
    if locale != customer.locale:
        filled["locale"] = {"before": customer.locale, "after": locale}
        customer.locale = locale
    if filled:
        record("customer.updated", "customer", customer.id, actor=actor, data=filled)
    return customer
