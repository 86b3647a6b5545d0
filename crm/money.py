"""Amounts as the application keeps them: whole minor units of their currency (fen,
cents; the yen has none, per ISO 4217 as Babel reports it)."""

from decimal import Decimal

from babel.numbers import get_currency_precision
from flask_babel import format_currency


def from_minor_units(minor: int, currency: str) -> Decimal:
    """19900 CNY -> Decimal("199.00")."""
    return Decimal(minor).scaleb(-get_currency_precision(currency))


def format_money(minor: int, currency: str) -> str:
    """An amount in minor units as the page's language writes it: ¥186.50, CN¥186.50."""
    return format_currency(from_minor_units(minor, currency), currency)


def whole_to_minor(amount: int, currency: str) -> int:
    """500 (whole CNY) -> 50000."""
    return amount * 10 ** get_currency_precision(currency)
