"""A refund policy version's structured terms, and their JSON form.

The JSON form is a public contract: providers keep it in version control and import it,
and a published version's hash is taken over ``Terms.to_json()``. Example::

    {"cooling_off_days": 7, "prorate_unused_balance": true,
     "non_refundable_items": [{"name": "Number activation fee", "amount": "50.00"}],
     "handling_fee_percent": "5", "handling_fee_cap": "30.00", "payout_days": 15,
     "required_evidence": ["invoice", "contract"]}

Amounts and percentages are decimal strings, never JSON numbers: a float cannot hold
0.10 exactly, and a contract about money should not depend on a parser's rounding.
Every refusal is a ``TermsError`` naming the key path at fault (``handling_fee_percent``,
``non_refundable_items[1].amount``) in its ``field`` and at the start of its message.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from flask_babel import lazy_gettext as _l

from crm.errors import DomainError

COOLING_OFF_DAYS_MAX = 3650
PAYOUT_DAYS_MIN, PAYOUT_DAYS_MAX = 1, 365
ITEMS_MAX = 50
ITEM_NAME_MAX = 200
EVIDENCE_MAX = 20
EVIDENCE_NAME_MAX = 100

# Plain decimal text only: no sign, exponent, spaces or non-ASCII digits, at most 2 decimals.
AMOUNT_RE = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,2})?", re.ASCII)
PERCENT_RE = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,2})?", re.ASCII)
CENT = Decimal("0.01")

REQUIRED_KEYS = ("cooling_off_days", "prorate_unused_balance", "handling_fee_percent", "payout_days")
OPTIONAL_KEYS = ("non_refundable_items", "handling_fee_cap", "required_evidence")
KNOWN_KEYS = frozenset(REQUIRED_KEYS + OPTIONAL_KEYS)
ITEM_KEYS = ("name", "amount")


class TermsError(DomainError):
    """Terms that cannot be accepted; ``field`` is the key path at fault."""


@dataclass(frozen=True)
class NonRefundableItem:
    name: str
    amount: Decimal


@dataclass(frozen=True)
class Terms:
    """What a policy version promises, in the form the refund calculator reads.

    Build it with ``from_json``, which checks every limit; the constructor trusts its
    caller."""

    cooling_off_days: int
    prorate_unused_balance: bool
    non_refundable_items: tuple[NonRefundableItem, ...]
    handling_fee_percent: Decimal
    handling_fee_cap: Decimal | None
    payout_days: int
    required_evidence: tuple[str, ...]

    @classmethod
    def from_json(cls, data: object) -> "Terms":
        """Terms from their parsed JSON form; ``TermsError`` names the first fault.

        Every key is required except ``non_refundable_items`` and ``required_evidence``
        (default: none) and ``handling_fee_cap`` (default: null, no cap); any other key
        is refused, so a misspelt term cannot be silently ignored."""
        if not isinstance(data, Mapping):
            raise TermsError(
                _l('The terms must be a JSON object, such as {"cooling_off_days": 7, "payout_days": 15, …}.')
            )
        _refuse_unknown_keys(data, KNOWN_KEYS, prefix="")
        for key in REQUIRED_KEYS:
            if key not in data:
                raise TermsError(_l("%(field)s: this term is required.", field=key), key)
        return cls(
            cooling_off_days=_days(data, "cooling_off_days", 0, COOLING_OFF_DAYS_MAX, example=7),
            prorate_unused_balance=_flag(data, "prorate_unused_balance"),
            non_refundable_items=_items(data.get("non_refundable_items", [])),
            handling_fee_percent=_percent(data["handling_fee_percent"], "handling_fee_percent"),
            handling_fee_cap=_fee_cap(data.get("handling_fee_cap")),
            payout_days=_days(data, "payout_days", PAYOUT_DAYS_MIN, PAYOUT_DAYS_MAX, example=15),
            required_evidence=_evidence(data.get("required_evidence", [])),
        )

    def to_json(self) -> dict[str, Any]:
        """The canonical JSON form: every key, in the documented order; amounts with two
        decimals ("50.00"), the percentage without trailing zeros ("5", "2.5")."""
        return {
            "cooling_off_days": self.cooling_off_days,
            "prorate_unused_balance": self.prorate_unused_balance,
            "non_refundable_items": [
                {"name": item.name, "amount": _amount_text(item.amount)} for item in self.non_refundable_items
            ],
            "handling_fee_percent": _percent_text(self.handling_fee_percent),
            "handling_fee_cap": _optional_amount_text(self.handling_fee_cap),
            "payout_days": self.payout_days,
            "required_evidence": list(self.required_evidence),
        }


# --- reading each kind of value ------------------------------------------------------------


def _refuse_unknown_keys(data: Mapping, known: frozenset[str] | tuple[str, ...], *, prefix: str) -> None:
    for key in data:
        if key not in known:
            path = f"{prefix}{key}"
            raise TermsError(
                _l(
                    "%(field)s: not a known term; use only %(known)s.",
                    field=path,
                    known=", ".join(sorted(known)),
                ),
                path,
            )


def _days(data: Mapping, key: str, low: int, high: int, *, example: int) -> int:
    value = data[key]
    # bool is an int in Python; true is not a number of days.
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise TermsError(
            _l(
                "%(field)s: a whole number of days from %(min)d to %(max)d, such as %(example)d.",
                field=key,
                min=low,
                max=high,
                example=example,
            ),
            key,
        )
    return value


def _flag(data: Mapping, key: str) -> bool:
    value = data[key]
    if not isinstance(value, bool):
        raise TermsError(_l("%(field)s: true or false.", field=key), key)
    return value


def _written_as_number(value: object, field: str, example: str) -> None:
    """A JSON number where decimal text belongs: say how to write it instead."""
    if isinstance(value, int | float):  # bool included
        raise TermsError(
            _l(
                '%(field)s: write the number as text in quotes, such as "%(example)s".',
                field=field,
                example=example,
            ),
            field,
        )


def _amount(value: object, field: str, *, example: str = "50.00") -> Decimal:
    _written_as_number(value, field, example)
    if not isinstance(value, str) or not AMOUNT_RE.fullmatch(value):
        raise TermsError(
            _l(
                '%(field)s: an amount of 0 or more with at most 2 decimal places, such as "%(example)s".',
                field=field,
                example=example,
            ),
            field,
        )
    return Decimal(value).quantize(CENT)


def _percent(value: object, field: str) -> Decimal:
    _written_as_number(value, field, "5")
    if not isinstance(value, str) or not PERCENT_RE.fullmatch(value) or Decimal(value) > 100:
        raise TermsError(
            _l(
                '%(field)s: a percentage from 0 to 100 with at most 2 decimal places, such as "5".',
                field=field,
            ),
            field,
        )
    return Decimal(value)


def _fee_cap(value: object) -> Decimal | None:
    if value is None:
        return None
    field = "handling_fee_cap"
    _written_as_number(value, field, "30.00")
    if not isinstance(value, str) or not AMOUNT_RE.fullmatch(value):
        raise TermsError(
            _l(
                '%(field)s: an amount of 0 or more with at most 2 decimal places, such as "30.00", '
                "or null for no cap.",
                field=field,
            ),
            field,
        )
    return Decimal(value).quantize(CENT)


def _name(value: object, field: str, limit: int) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not 1 <= len(text) <= limit:
        raise TermsError(
            _l("%(field)s: a name of 1 to %(max)d characters.", field=field, max=limit),
            field,
        )
    return text


def _list(value: object, field: str, limit: int) -> list:
    if not isinstance(value, list) or len(value) > limit:
        raise TermsError(_l("%(field)s: a list of at most %(max)d entries.", field=field, max=limit), field)
    return value


def _items(value: object) -> tuple[NonRefundableItem, ...]:
    items = []
    for index, item in enumerate(_list(value, "non_refundable_items", ITEMS_MAX)):
        path = f"non_refundable_items[{index}]"
        if not isinstance(item, Mapping):
            raise TermsError(
                _l(
                    '%(field)s: an item with a name and an amount, such as {"name": "Number activation fee", '
                    '"amount": "50.00"}.',
                    field=path,
                ),
                path,
            )
        _refuse_unknown_keys(item, ITEM_KEYS, prefix=f"{path}.")
        missing = next((f"{path}.{key}" for key in ITEM_KEYS if key not in item), None)
        if missing:
            raise TermsError(_l("%(field)s: this term is required.", field=missing), missing)
        items.append(
            NonRefundableItem(
                name=_name(item["name"], f"{path}.name", ITEM_NAME_MAX),
                amount=_amount(item["amount"], f"{path}.amount"),
            )
        )
    return tuple(items)


def _evidence(value: object) -> tuple[str, ...]:
    names: list[str] = []
    seen: set[str] = set()
    for index, entry in enumerate(_list(value, "required_evidence", EVIDENCE_MAX)):
        path = f"required_evidence[{index}]"
        name = _name(entry, path, EVIDENCE_NAME_MAX)
        if name.casefold() in seen:
            raise TermsError(_l('%(field)s: "%(name)s" is listed twice.', field=path, name=name), path)
        seen.add(name.casefold())
        names.append(name)
    return tuple(names)


# --- writing ---------------------------------------------------------------------------------


def _amount_text(amount: Decimal) -> str:
    return f"{amount.quantize(CENT):f}"


def _optional_amount_text(amount: Decimal | None) -> str | None:
    return None if amount is None else _amount_text(amount)


def _percent_text(percent: Decimal) -> str:
    # normalize() alone writes 100 as "1E+2".
    return f"{percent.normalize():f}"
