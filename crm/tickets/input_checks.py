"""Checks on what people type and send (text, amounts, currencies, purchase dates,
files): each returns the value as it will be kept, or raises a DomainError naming the field."""

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation

from babel.numbers import get_currency_precision
from flask_babel import lazy_gettext as _l

from crm.columns import utcnow
from crm.errors import DomainError
from crm.provisioning.service import accepted_currencies

MAX_FILES = 5
MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_DESCRIPTION = 20_000
# How far back a purchase may be claimed on the form: the three-year limitation period
# for civil claims in China (Civil Code art. 188), plus a year's margin for late payments.
OLDEST_PURCHASE_DAYS = 4 * 365


@dataclass(frozen=True)
class Upload:
    """A file as received: its claimed name and its bytes (the name decides nothing)."""

    filename: str | None
    content: bytes


def to_minor_units(amount: Decimal | str | None, currency: str) -> int | None:
    """``199.00`` CNY -> 19900; refuses negatives and more decimals than the currency has."""
    if amount is None or amount == "":
        return None
    try:
        value = Decimal(str(amount).strip())
    except InvalidOperation:
        raise DomainError(_l("Enter an amount such as 199.00."), "amount") from None
    if not value.is_finite():
        raise DomainError(_l("Enter an amount such as 199.00."), "amount")
    if value < 0:
        raise DomainError(_l("The amount cannot be negative."), "amount")
    if value.is_zero():
        return 0
    # Counted in integers from the digits as written: Decimal arithmetic would overflow its
    # context on 1E+999999999 and round 1E-999999999 to zero.
    digits = get_currency_precision(currency)
    if value.adjusted() > 15:
        raise DomainError(_l("The amount is too large."), "amount")
    _, coefficient, exponent = value.as_tuple()
    shift = exponent + digits
    if shift < 0 and any(coefficient[shift:]):
        raise DomainError(_l("Use at most %(n)d decimal places.", n=digits), "amount")
    whole = int("".join(map(str, coefficient)))
    minor = whole * 10**shift if shift >= 0 else whole // 10**-shift
    if minor > 10**15:
        raise DomainError(_l("The amount is too large."), "amount")
    return minor


def check_currency(code: str | None) -> str:
    """The currency of a claim: one the tenant accepts (by default only its own)."""
    accepted = accepted_currencies()
    if not code:
        return accepted[0]
    if code not in accepted:
        raise DomainError(_l("We take refund requests in %(codes)s.", codes=", ".join(accepted)), "currency")
    return code


def check_claimed_amount(amount: Decimal | str | None, currency: str) -> int | None:
    """The amount a customer asks back, in minor units: optional, but never zero."""
    minor = to_minor_units(amount, currency)
    if minor == 0:
        raise DomainError(
            _l("Enter the amount you ask back, or leave it empty if you do not know it."), "amount"
        )
    return minor


def check_purchase_date(purchase_date: date | None) -> None:
    """A purchase date the desk can act on: not in the future, nor so old that the claim
    is past the limitation period (three years, Civil Code art. 188) plus a margin."""
    if purchase_date is None:
        return
    today = utcnow().date()
    if purchase_date > today + timedelta(days=1):
        raise DomainError(_l("The purchase date cannot be in the future."), "purchase_date")
    if purchase_date < today - timedelta(days=OLDEST_PURCHASE_DAYS):
        raise DomainError(
            _l(
                "A purchase more than %(years)d years ago is too old to claim here. "
                "Check the date, or contact us by phone.",
                years=OLDEST_PURCHASE_DAYS // 365,
            ),
            "purchase_date",
        )


def check_text(value: str | None, field_name: str, limit: int, *, required: bool) -> str:
    value = (value or "").strip()
    if required and not value:
        raise DomainError(_l("This field is required."), field_name)
    if len(value) > limit:
        raise DomainError(_l("Use at most %(n)d characters.", n=limit), field_name)
    return value


def check_uploads(uploads: list[Upload]) -> None:
    if len(uploads) > MAX_FILES:
        raise DomainError(_l("Attach at most %(n)d files.", n=MAX_FILES), "attachments")
    for upload in uploads:
        if not upload.content:
            raise DomainError(
                _l("%(name)s is empty: attach the file itself.", name=upload.filename or "?"), "attachments"
            )
        if len(upload.content) > MAX_FILE_BYTES:
            raise DomainError(
                _l(
                    "%(name)s is larger than %(mb)d MB.",
                    name=upload.filename or "?",
                    mb=MAX_FILE_BYTES // 2**20,
                ),
                "attachments",
            )
