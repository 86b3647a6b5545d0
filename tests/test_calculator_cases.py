"""The refund calculator against cases worked out by hand, one per reason a customer can
give, under the example policy (docs/examples/refund-policy.json): 7 days' cooling-off,
unused service pro rata, a 50.00 activation fee, a 5 % handling fee capped at 30.00.

Each case states the arithmetic a person would do on paper; the calculator must reach the
same amount and say the same key lines. Then the case the issue found on the refund page:
a 49.90 charge taken twice must not lose the activation fee, and a ticket with a purchase
date must have its cooling-off period checked without the agent typing a date."""

from datetime import date
from decimal import Decimal

import pytest
from flask_babel import force_locale

from crm.policies.terms import Terms
from crm.refunds.calculator import Usage, suggest
from tests import test_refunds
from tests.test_refunds import (
    WEDNESDAY_10AM,
    calculation_rows,
    decide,
    received,
    staff_client,
    text_of,
)
from tests.test_sla import travel

desk = test_refunds.desk  # the refund tests' desk: a Shanghai provider under the example policy

TERMS = Terms.from_json(
    {
        "cooling_off_days": 7,
        "prorate_unused_balance": True,
        "non_refundable_items": [{"name": "Number activation fee", "amount": "50.00"}],
        "handling_fee_percent": "5",
        "handling_fee_cap": "30.00",
        "payout_days": 15,
    }
)
SEP = 2026, 9


def sep(day: int) -> date:
    return date(*SEP, day)


# (reason, paid, purchased, cancelled, usage, expected suggestion, key lines in order)
CASES = [
    pytest.param(
        "duplicate_charge",
        "49.90",
        sep(1),
        None,
        Usage(),
        # Taken twice: the second 49.90 goes back whole; the 50.00 fee is not the point.
        "49.90",
        [
            "Amount paid: CN¥49.90",
            "A charge taken twice is given back in full: this is not a refund of the service, "
            "so nothing is deducted",
        ],
        id="duplicate_charge",
    ),
    pytest.param(
        "unauthorized_charge",
        "199.00",
        date(2026, 8, 1),
        sep(15),
        Usage(30, 14),
        # Long after the cooling-off period and with service used: still the whole charge.
        "199.00",
        [
            "Amount paid: CN¥199.00",
            "A charge the customer did not authorise is given back in full: this is not a refund "
            "of the service, so nothing is deducted",
        ],
        id="unauthorized_charge",
    ),
    pytest.param(
        "unused_balance",
        "199.00",
        sep(1),
        sep(15),
        Usage(30, 14),
        # 199.00 - 50.00 = 149.00; x 16/30 = 79.4666… -> 79.47; 5 % = 3.9735 -> 3.97;
        # 79.47 - 3.97 = 75.50.
        "75.50",
        [
            "Amount paid: CN¥199.00",
            "Cancelled 14 days after purchase, after the 7-day cooling-off period",
            "Non-refundable: Number activation fee, CN¥50.00",
            "Service used 14 of 30 days: 16/30 of CN¥149.00 refunded",
            "Handling fee of 5% on CN¥79.47",
        ],
        id="unused_balance",
    ),
    pytest.param(
        "cancelled_contract",
        "120.00",
        sep(1),
        sep(20),
        Usage(balance_used_minor=3000),
        # 120.00 - 50.00 = 70.00; - 30.00 used = 40.00; 5 % = 2.00; 40.00 - 2.00 = 38.00.
        "38.00",
        [
            "Amount paid: CN¥120.00",
            "Cancelled 19 days after purchase, after the 7-day cooling-off period",
            "Non-refundable: Number activation fee, CN¥50.00",
            "Prepaid balance used: CN¥30.00",
            "Handling fee of 5% on CN¥40.00",
        ],
        id="cancelled_contract",
    ),
    pytest.param(
        "service_not_as_described",
        "88.80",
        sep(1),
        sep(8),
        Usage(30, 7),
        # Day 7 of a 7-day period, inclusive: the whole 88.80, nothing deducted.
        "88.80",
        [
            "Amount paid: CN¥88.80",
            "Cancelled 7 days after purchase, within the 7-day cooling-off period: full refund",
        ],
        id="service_not_as_described",
    ),
    pytest.param(
        "other",
        "1000.00",
        sep(1),
        None,
        Usage(),
        # No cancellation date: no cooling-off. 1000.00 - 50.00 = 950.00, use unknown, kept;
        # 5 % = 47.50, capped at 30.00: 950.00 - 30.00 = 920.00.
        "920.00",
        [
            "Amount paid: CN¥1,000.00",
            "Cancellation date not given: the cooling-off period cannot apply",
            "Non-refundable: Number activation fee, CN¥50.00",
            "Service usage not given: nothing deducted for use, CN¥950.00 kept",
            "Handling fee of 5% on CN¥950.00 is CN¥47.50, capped at CN¥30.00",
        ],
        id="other",
    ),
    pytest.param(
        None,
        "30.00",
        None,
        sep(3),
        Usage(30, 3),
        # No reason (a phone ticket), no purchase date: the 50.00 fee takes all of 30.00;
        # nothing is left for use or a fee.
        "0.00",
        [
            "Amount paid: CN¥30.00",
            "Purchase date not given: the cooling-off period cannot apply",
            "Non-refundable: Number activation fee, CN¥50.00, deducted only up to the CN¥30.00 remaining",
            "Service used 3 of 30 days: 27/30 of CN¥0.00 refunded",
        ],
        id="no-reason",
    ),
]


def minor(amount: str) -> int:
    return int(Decimal(amount) * 100)


@pytest.mark.parametrize("reason, paid, purchased, cancelled, usage, expected, lines", CASES)
def test_the_calculator_reaches_the_hand_worked_refund(
    app, reason, paid, purchased, cancelled, usage, expected, lines
):
    with app.app_context(), force_locale("en"):
        calculation = suggest(
            TERMS,
            paid_minor=minor(paid),
            currency="CNY",
            purchase_date=purchased,
            cancellation_date=cancelled,
            usage=usage,
            reason=reason,
        )
    assert calculation.suggested_minor == minor(expected)
    assert [line.text for line in calculation.lines] == lines
    assert calculation.lines[-1].total_minor == minor(expected)


@pytest.mark.parametrize(
    "reason, line",
    [
        ("duplicate_charge", "重复扣取的费用全额退还：这不是对服务的退款，不作任何扣除"),
        ("unauthorized_charge", "未经客户授权的扣费全额退还：这不是对服务的退款，不作任何扣除"),
    ],
)
def test_why_a_wrongful_charge_is_given_back_whole_is_said_in_chinese(app, reason, line):
    with app.app_context(), force_locale("zh_CN"):
        calculation = suggest(
            TERMS,
            paid_minor=4990,
            currency="CNY",
            purchase_date=sep(1),
            cancellation_date=None,
            reason=reason,
        )
        texts = [item.text for item in calculation.lines]
    assert texts == ["已付金额：¥49.90", line]
    assert calculation.suggested_minor == 4990


# --- on the refund page -----------------------------------------------------------------------


def test_a_duplicate_charge_keeps_its_activation_fee_out_of_the_refund_page(app, desk):
    """The issue's case: 49.90 taken twice, bought on Sep 1; the page suggested 0.00."""
    tenant = desk.tenant
    with travel(WEDNESDAY_10AM):
        ticket = received(app, tenant, paid="49.90", reason="duplicate_charge")
        agent = staff_client(app, tenant, desk.agent)
        page = decide(agent, tenant, ticket.number, action="calculate")
    assert page.status_code == 200
    assert "Suggested refund: CN¥49.90" in text_of(page.text)
    assert calculation_rows(page.text) == [
        ("Amount paid: CN¥49.90", "CN¥49.90", "CN¥49.90"),
        (
            "A charge taken twice is given back in full: this is not a refund of the service, "
            "so nothing is deducted",
            "CN¥0.00",
            "CN¥49.90",
        ),
    ]


def test_the_purchase_date_on_the_ticket_is_used_without_typing_a_cancellation_date(app, desk):
    """Bought Sep 1, asked on Sep 16: the request is the notice of cancellation, 15 days on,
    so the page says why the cooling-off period is over instead of "date not given"."""
    tenant = desk.tenant
    with travel(WEDNESDAY_10AM):
        ticket = received(app, tenant)
        agent = staff_client(app, tenant, desk.agent)
        page = decide(agent, tenant, ticket.number, action="calculate")
    assert page.status_code == 200
    read = text_of(page.text)
    assert "From the request: purchase date 2026-09-01; reason: Unused balance." in read
    rows = [row[0] for row in calculation_rows(page.text)]
    assert rows[1] == "Cancelled 15 days after purchase, after the 7-day cooling-off period"
    assert not any("date not given" in row or "dates not given" in row for row in rows), rows
