"""The refund a policy version's terms suggest for a purchase, shown line by line.

An agent proposes, and a manager or an auditor checks, the amount the terms compute; so
the result is the arithmetic itself, each step a sentence with its effect and the
running total. The rules, applied in this order:

1. The first line is the amount paid; the running total starts there.
   A charge taken twice (the ticket's reason ``duplicate_charge``) or not authorised by the
   customer (``unauthorized_charge``) is refunded in full: giving back such a charge is not
   a refund of the service, so no later rule applies (no cooling-off, non-refundable item,
   use or handling fee). One line says why, and the suggestion is the amount paid.
2. Cooling-off. If both the purchase date and the cancellation date are given and the
   cancellation came 0 to ``cooling_off_days`` calendar days after the purchase
   (inclusive; a cancellation on the day of purchase is day 0; a policy of 0 days has no
   cooling-off period at all), the refund is the full
   amount paid: one line says so, and no later rule applies. Otherwise one line (of
   effect 0) says why the cooling-off period does not apply: the cancellation came later,
   or which date (purchase, cancellation, or both) is not given.
3. Each non-refundable item of the terms is deducted, in the order the terms list it,
   one line each. A deduction never takes the total below zero: once the total is spent,
   an item deducts only what is left.
4. Use of the service, on what remains after step 3 (the base):

   - If the terms refund unused service pro rata (``prorate_unused_balance``):
     a. when the plan's length in days and the days used are both given, the base is
        multiplied by (days not used) / (plan's length) and rounded;
     b. otherwise, when the prepaid balance used is given, it is deducted (never more
        than the base);
     c. otherwise nothing is deducted for use, and a line says that usage is not known
        and the base is kept.

     Days of service take precedence over balance used when both are given.
   - If they do not, nothing is refunded after the cooling-off period: one line deducts
     the whole base.
5. Handling fee: ``handling_fee_percent`` of what remains after step 4, rounded, and at
   most ``handling_fee_cap`` when the terms set one. It is deducted in one line, shown
   only when the fee is above zero.
6. Rounding: amounts are whole minor units of the currency (cents, fen; the yen has
   none, per ISO 4217 as Babel reports it). Each step that produces a fraction of a minor
   unit (an item or cap written with more decimals than the currency has, the pro rata
   share, the fee) rounds that step's result to the nearest minor unit, halves away from
   zero (ROUND_HALF_UP), before the next step. The fractions are computed exactly, not in
   floating point.

The suggestion is the last line's running total: never negative, never above the amount
paid. Amounts in the sentences are formatted for the current locale.
"""

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from babel.numbers import get_currency_precision, list_currencies
from flask_babel import format_percent, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from crm.errors import DomainError
from crm.money import format_money
from crm.policies.terms import Terms

# The ticket reasons whose refund gives back a wrongful charge, not a service bought.
WRONGFUL_CHARGES = {
    "duplicate_charge": _l(
        "A charge taken twice is given back in full: this is not a refund of the service, "
        "so nothing is deducted"
    ),
    "unauthorized_charge": _l(
        "A charge the customer did not authorise is given back in full: this is not a refund of "
        "the service, so nothing is deducted"
    ),
}


@dataclass(frozen=True)
class Usage:
    """How much of what was bought the customer used, as far as it is known."""

    service_days_total: int | None = None  # the plan's length, e.g. 365
    service_days_used: int | None = None
    balance_used_minor: int | None = None  # prepaid balance consumed, in minor units


@dataclass(frozen=True)
class Line:
    text: str  # a sentence for a person, in the current locale
    amount_minor: int  # this step's effect (negative for a deduction); the first line: paid
    total_minor: int  # the running total after this step


@dataclass(frozen=True)
class Calculation:
    lines: tuple[Line, ...]
    suggested_minor: int
    within_cooling_off: bool


def suggest(
    terms: Terms,
    *,
    paid_minor: int,
    currency: str,
    purchase_date: date | None,
    cancellation_date: date | None,
    usage: Usage = Usage(),
    reason: str | None = None,
) -> Calculation:
    """The refund ``terms`` suggest, by the rules in this module's docstring; ``reason``
    is the ticket's (``duplicate_charge``, ``unauthorized_charge``, …).

    Refuses (``DomainError`` naming the field) a negative amount, an unknown currency, a
    cancellation before the purchase, and usage that cannot be true."""
    _check(paid_minor, currency, purchase_date, cancellation_date, usage)
    sheet = _Sheet(currency)
    sheet.add(_("Amount paid: %(amount)s", amount=sheet.money(paid_minor)), paid_minor)
    if reason in WRONGFUL_CHARGES:
        sheet.add(str(WRONGFUL_CHARGES[reason]), 0)
        return sheet.result(within_cooling_off=False)

    if purchase_date is not None and cancellation_date is not None:
        days = (cancellation_date - purchase_date).days
        if terms.cooling_off_days and days <= terms.cooling_off_days:
            sheet.add(
                ngettext(
                    "Cancelled %(num)d day after purchase, within the %(window)d-day cooling-off period: "
                    "full refund",
                    "Cancelled %(num)d days after purchase, within the %(window)d-day cooling-off period: "
                    "full refund",
                    days,
                    window=terms.cooling_off_days,
                ),
                0,
            )
            return sheet.result(within_cooling_off=True)
        sheet.add(
            ngettext(
                "Cancelled %(num)d day after purchase, after the %(window)d-day cooling-off period",
                "Cancelled %(num)d days after purchase, after the %(window)d-day cooling-off period",
                days,
                window=terms.cooling_off_days,
            ),
            0,
        )
    elif purchase_date is None and cancellation_date is None:
        sheet.add(_("Purchase and cancellation dates not given: the cooling-off period cannot apply"), 0)
    elif purchase_date is None:
        sheet.add(_("Purchase date not given: the cooling-off period cannot apply"), 0)
    else:
        sheet.add(_("Cancellation date not given: the cooling-off period cannot apply"), 0)

    for item in terms.non_refundable_items:
        _deduct_item(sheet, item.name, sheet.to_minor(item.amount))

    if terms.prorate_unused_balance:
        _deduct_use(sheet, usage)
    else:
        sheet.add(
            _("After the cooling-off period this policy refunds neither used nor unused service"),
            -sheet.total,
        )

    _deduct_handling_fee(sheet, terms)
    return sheet.result(within_cooling_off=False)


# --- the steps -------------------------------------------------------------------------------


def _deduct_item(sheet: "_Sheet", name: str, amount: int) -> None:
    if amount <= sheet.total:
        sheet.add(_("Non-refundable: %(name)s, %(amount)s", name=name, amount=sheet.money(amount)), -amount)
    else:
        sheet.add(
            _(
                "Non-refundable: %(name)s, %(amount)s, deducted only up to the %(left)s remaining",
                name=name,
                amount=sheet.money(amount),
                left=sheet.money(sheet.total),
            ),
            -sheet.total,
        )


def _deduct_use(sheet: "_Sheet", usage: Usage) -> None:
    base = sheet.total
    if usage.service_days_total is not None and usage.service_days_used is not None:
        total_days, used = usage.service_days_total, usage.service_days_used
        kept = _divide_half_up(base * (total_days - used), total_days)
        sheet.add(
            ngettext(
                "Service used %(used)d of %(num)d day: %(left)d/%(num)d of %(base)s refunded",
                "Service used %(used)d of %(num)d days: %(left)d/%(num)d of %(base)s refunded",
                total_days,
                used=used,
                left=total_days - used,
                base=sheet.money(base),
            ),
            kept - base,
        )
    elif usage.balance_used_minor is not None:
        used = usage.balance_used_minor
        if used <= base:
            sheet.add(_("Prepaid balance used: %(used)s", used=sheet.money(used)), -used)
        else:
            sheet.add(
                _(
                    "Prepaid balance used: %(used)s, deducted only up to the %(left)s remaining",
                    used=sheet.money(used),
                    left=sheet.money(base),
                ),
                -base,
            )
    else:
        sheet.add(
            _("Service usage not given: nothing deducted for use, %(base)s kept", base=sheet.money(base)), 0
        )


def _deduct_handling_fee(sheet: "_Sheet", terms: Terms) -> None:
    base = sheet.total
    numerator, denominator = terms.handling_fee_percent.as_integer_ratio()
    fee = min(_divide_half_up(base * numerator, denominator * 100), base)
    percent = format_percent(terms.handling_fee_percent / 100, "#,##0.##%")
    cap = None if terms.handling_fee_cap is None else sheet.to_minor(terms.handling_fee_cap)
    if cap is not None and fee > cap:
        sheet.add(
            _(
                "Handling fee of %(percent)s on %(base)s is %(fee)s, capped at %(cap)s",
                percent=percent,
                base=sheet.money(base),
                fee=sheet.money(fee),
                cap=sheet.money(cap),
            ),
            -cap,
        )
    elif fee > 0:
        sheet.add(
            _("Handling fee of %(percent)s on %(base)s", percent=percent, base=sheet.money(base)),
            -fee,
        )


# --- bookkeeping -----------------------------------------------------------------------------


class _Sheet:
    """The lines so far and their running total, in one currency's minor units."""

    def __init__(self, currency: str) -> None:
        self.currency = currency
        self.digits = get_currency_precision(currency)
        self.lines: list[Line] = []
        self.total = 0

    def add(self, text: str, amount_minor: int) -> None:
        self.total += amount_minor
        self.lines.append(Line(text, amount_minor, self.total))

    def result(self, *, within_cooling_off: bool) -> Calculation:
        return Calculation(tuple(self.lines), self.total, within_cooling_off)

    def to_minor(self, amount: Decimal) -> int:
        """``50.00`` -> 5000 fen; ``50.50`` -> 51 yen (half up)."""
        return int(amount.scaleb(self.digits).quantize(Decimal(1), rounding=ROUND_HALF_UP))

    def money(self, amount_minor: int) -> str:
        return format_money(amount_minor, self.currency)


def _divide_half_up(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half up, exactly; both are non-negative here."""
    return (2 * numerator + denominator) // (2 * denominator)


def _check(
    paid_minor: int, currency: str, purchase_date: date | None, cancellation_date: date | None, usage: Usage
) -> None:
    if paid_minor < 0:
        raise DomainError(_l("The amount cannot be negative."), "amount")
    if currency not in list_currencies():
        raise DomainError(
            _l("Unknown currency %(code)s (use an ISO 4217 code such as CNY).", code=currency), "currency"
        )
    if purchase_date is not None and cancellation_date is not None and cancellation_date < purchase_date:
        raise DomainError(
            _l("The cancellation date cannot be before the purchase date."), "cancellation_date"
        )
    total, used = usage.service_days_total, usage.service_days_used
    if (total is None) != (used is None):
        missing = "service_days_total" if total is None else "service_days_used"
        raise DomainError(_l("Give both the plan's length in days and the days of service used."), missing)
    if total is not None and total < 1:
        raise DomainError(_l("The plan's length must be at least 1 day."), "service_days_total")
    if total is not None and used is not None and not 0 <= used <= total:
        raise DomainError(
            _l("The days of service used must be from 0 to the plan's length, %(total)d.", total=total),
            "service_days_used",
        )
    if usage.balance_used_minor is not None and usage.balance_used_minor < 0:
        raise DomainError(_l("The amount cannot be negative."), "balance_used_minor")
