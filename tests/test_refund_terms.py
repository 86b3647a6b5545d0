"""A policy's refund terms (their JSON contract) and the refund they suggest, line by line.

The worked examples are computed by hand in the comments, as a manager or an auditor
would check them; amounts are in minor units (fen for CNY, yen for JPY).
"""

import copy
import json
from datetime import date, timedelta
from decimal import Decimal

import pytest
from flask_babel import force_locale
from hypothesis import given
from hypothesis import strategies as st

from crm.errors import DomainError
from crm.policies.terms import NonRefundableItem, Terms, TermsError
from crm.refunds.calculator import Usage, suggest

DOCUMENTED_EXAMPLE = {
    "cooling_off_days": 7,
    "prorate_unused_balance": True,
    "non_refundable_items": [{"name": "Number activation fee", "amount": "50.00"}],
    "handling_fee_percent": "5",
    "handling_fee_cap": "30.00",
    "payout_days": 15,
    "required_evidence": ["invoice", "contract"],
}
PURCHASED = date(2025, 3, 1)


@pytest.fixture(scope="module")
def in_request(app):
    """Messages and amounts are rendered in a request's locale (English unless forced)."""
    with app.test_request_context():
        yield


def terms(**changes) -> Terms:
    return Terms.from_json({**DOCUMENTED_EXAMPLE, **changes})


def texts(calculation) -> list[str]:
    return [line.text for line in calculation.lines]


# --- the JSON contract -------------------------------------------------------------------------


def test_the_documented_example_reads_as_written(in_request):
    parsed = Terms.from_json(DOCUMENTED_EXAMPLE)

    assert parsed == Terms(
        cooling_off_days=7,
        prorate_unused_balance=True,
        non_refundable_items=(NonRefundableItem("Number activation fee", Decimal("50.00")),),
        handling_fee_percent=Decimal("5"),
        handling_fee_cap=Decimal("30.00"),
        payout_days=15,
        required_evidence=("invoice", "contract"),
    )
    assert parsed.to_json() == DOCUMENTED_EXAMPLE
    assert list(parsed.to_json()) == list(DOCUMENTED_EXAMPLE)  # the documented key order
    assert Terms.from_json(parsed.to_json()) == parsed


def test_to_json_writes_one_canonical_form(in_request):
    written_loosely = Terms.from_json(
        {
            "cooling_off_days": 0,
            "prorate_unused_balance": False,
            "non_refundable_items": [
                {"name": "  SIM card  ", "amount": "20"},
                {"name": "Setup", "amount": "0.5"},
            ],
            "handling_fee_percent": "2.50",
            "handling_fee_cap": "30",
            "payout_days": 1,
            "required_evidence": [" invoice "],
        }
    )

    assert written_loosely.to_json() == {
        "cooling_off_days": 0,
        "prorate_unused_balance": False,
        "non_refundable_items": [
            {"name": "SIM card", "amount": "20.00"},
            {"name": "Setup", "amount": "0.50"},
        ],
        "handling_fee_percent": "2.5",
        "handling_fee_cap": "30.00",
        "payout_days": 1,
        "required_evidence": ["invoice"],
    }
    assert Terms.from_json(written_loosely.to_json()) == written_loosely


@pytest.mark.parametrize(
    ("percent", "written"), [("100.00", "100"), ("0.00", "0"), ("10", "10"), ("0.05", "0.05")]
)
def test_the_percentage_is_written_without_trailing_zeros(in_request, percent, written):
    assert terms(handling_fee_percent=percent).to_json()["handling_fee_percent"] == written


def test_optional_terms_default_to_none_and_are_written_out(in_request):
    minimal = {
        "cooling_off_days": 14,
        "prorate_unused_balance": True,
        "handling_fee_percent": "0",
        "payout_days": 30,
    }

    written = Terms.from_json(minimal).to_json()

    assert written == {
        **minimal,
        "non_refundable_items": [],
        "handling_fee_cap": None,
        "required_evidence": [],
    }
    assert json.dumps(written) == json.dumps(Terms.from_json(written).to_json())


def _without(key: str) -> dict:
    data = copy.deepcopy(DOCUMENTED_EXAMPLE)
    del data[key]
    return data


def _with(**changes) -> dict:
    return {**copy.deepcopy(DOCUMENTED_EXAMPLE), **changes}


TWO_ITEMS = [{"name": "Number activation fee", "amount": "50.00"}, {"name": "SIM card", "amount": "1.001"}]


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (_with(cooling_off_days=-1), "cooling_off_days", "a whole number of days from 0 to 3650, such as 7"),
        (_with(cooling_off_days=3651), "cooling_off_days", "a whole number of days from 0 to 3650"),
        (_with(handling_fee_percent="100.01"), "handling_fee_percent", "a percentage from 0 to 100"),
        (_with(refund_everything=True), "refund_everything", "not a known term; use only cooling_off_days,"),
        (
            _with(non_refundable_items=[{"name": "Number activation fee", "amount": 50.0}]),
            "non_refundable_items[0].amount",
            'write the number as text in quotes, such as "50.00"',
        ),
        (
            _with(handling_fee_percent=5),
            "handling_fee_percent",
            'write the number as text in quotes, such as "5"',
        ),
        (
            _with(handling_fee_cap=True),
            "handling_fee_cap",
            'write the number as text in quotes, such as "30.00"',
        ),
        (_with(payout_days=True), "payout_days", "a whole number of days from 1 to 365, such as 15"),
        (_with(payout_days=15.0), "payout_days", "a whole number of days from 1 to 365"),
        (_with(prorate_unused_balance="yes"), "prorate_unused_balance", "true or false"),
        (_with(handling_fee_cap="abc"), "handling_fee_cap", 'such as "30.00", or null for no cap'),
        (_with(handling_fee_cap="-1.00"), "handling_fee_cap", "an amount of 0 or more"),
        (_with(handling_fee_percent="1e1"), "handling_fee_percent", "a percentage from 0 to 100"),
        (_with(non_refundable_items=TWO_ITEMS), "non_refundable_items[1].amount", "at most 2 decimal places"),
        (_with(handling_fee_percent="2.125"), "handling_fee_percent", "at most 2 decimal places"),
        (_without("payout_days"), "payout_days", "this term is required"),
        (_without("handling_fee_percent"), "handling_fee_percent", "this term is required"),
        (
            _with(required_evidence=["invoice", "contract", "Invoice"]),
            "required_evidence[2]",
            '"Invoice" is listed twice',
        ),
        (_with(required_evidence=["invoice", "  "]), "required_evidence[1]", "a name of 1 to 100 characters"),
        (
            _with(required_evidence=[f"proof {n}" for n in range(21)]),
            "required_evidence",
            "at most 20 entries",
        ),
        (_with(required_evidence="invoice"), "required_evidence", "a list of at most 20 entries"),
        (
            _with(non_refundable_items=[{"name": "x", "amount": "1.00"}] * 51),
            "non_refundable_items",
            "a list of at most 50 entries",
        ),
        (
            _with(non_refundable_items=["SIM card"]),
            "non_refundable_items[0]",
            "an item with a name and an amount",
        ),
        (
            _with(non_refundable_items=[{"amount": "1.00"}]),
            "non_refundable_items[0].name",
            "this term is required",
        ),
        (
            _with(non_refundable_items=[{"name": "SIM", "amount": "1.00", "vat": "0.13"}]),
            "non_refundable_items[0].vat",
            "not a known term; use only amount, name",
        ),
        (
            _with(non_refundable_items=[{"name": "x" * 201, "amount": "1.00"}]),
            "non_refundable_items[0].name",
            "a name of 1 to 200 characters",
        ),
    ],
)
def test_a_refusal_names_the_field_in_the_error_and_the_message(in_request, data, field, message):
    with pytest.raises(TermsError) as refused:
        Terms.from_json(data)

    assert refused.value.field == field
    # The message stands alone: it starts with the key path it is about.
    assert refused.value.message.startswith(f"{field}: ")
    assert message in refused.value.message


@pytest.mark.parametrize("data", [None, [], "terms", 7])
def test_terms_that_are_not_an_object_are_refused(in_request, data):
    with pytest.raises(TermsError, match="must be a JSON object"):
        Terms.from_json(data)


def test_terms_errors_are_domain_errors_shown_like_any_other(in_request):
    with pytest.raises(DomainError) as refused:
        Terms.from_json(_with(payout_days=0))
    assert refused.value.status == 422


# --- the calculator's worked examples (CNY unless said) ---------------------------------------


def test_within_the_cooling_off_period_the_refund_is_full(in_request):
    # Bought 1 March, cancelled 6 March: 5 days, within 7. Nothing is deducted, not even the
    # activation fee or the handling fee: 199.00 back.
    result = suggest(
        terms(),
        paid_minor=19900,
        currency="CNY",
        purchase_date=PURCHASED,
        cancellation_date=PURCHASED + timedelta(days=5),
        usage=Usage(service_days_total=365, service_days_used=5),
    )

    assert result.within_cooling_off
    assert result.suggested_minor == 19900
    assert texts(result) == [
        "Amount paid: CN¥199.00",
        "Cancelled 5 days after purchase, within the 7-day cooling-off period: full refund",
    ]
    assert [line.amount_minor for line in result.lines] == [19900, 0]


@pytest.mark.parametrize(("days", "within"), [(0, True), (1, True), (7, True), (8, False)])
def test_the_last_day_of_the_cooling_off_period_still_counts(in_request, days, within):
    result = suggest(
        terms(),
        paid_minor=19900,
        currency="CNY",
        purchase_date=PURCHASED,
        cancellation_date=PURCHASED + timedelta(days=days),
    )
    assert result.within_cooling_off is within
    assert (result.suggested_minor == 19900) is within


def test_a_year_plan_used_for_120_days(in_request):
    # Paid 199.00 for a 365-day plan, cancelled after 120 days (outside the 7-day window).
    #   199.00 - 50.00 activation fee                            = 149.00
    #   149.00 × 245/365 = 100.01369… -> 100.01 (half up)         deducts 48.99
    #   handling fee 5% of 100.01 = 5.0005 -> 5.00 (under the 30.00 cap)
    #   100.01 - 5.00                                            = 95.01
    result = suggest(
        terms(),
        paid_minor=19900,
        currency="CNY",
        purchase_date=PURCHASED,
        cancellation_date=PURCHASED + timedelta(days=120),
        usage=Usage(service_days_total=365, service_days_used=120),
    )

    assert not result.within_cooling_off
    assert result.suggested_minor == 9501
    assert texts(result) == [
        "Amount paid: CN¥199.00",
        "Cancelled 120 days after purchase, after the 7-day cooling-off period",
        "Non-refundable: Number activation fee, CN¥50.00",
        "Service used 120 of 365 days: 245/365 of CN¥149.00 refunded",
        "Handling fee of 5% on CN¥100.01",
    ]
    assert [(line.amount_minor, line.total_minor) for line in result.lines] == [
        (19900, 19900),
        (0, 19900),
        (-5000, 14900),
        (-4899, 10001),
        (-500, 9501),
    ]


def test_prepaid_balance_used_is_deducted(in_request):
    # A 100.00 top-up with no fixed fee, 36.40 of it spent:
    #   100.00 - 36.40 = 63.60; fee 5% of 63.60 = 3.18; 63.60 - 3.18 = 60.42
    result = suggest(
        terms(non_refundable_items=[]),
        paid_minor=10000,
        currency="CNY",
        purchase_date=PURCHASED,
        cancellation_date=PURCHASED + timedelta(days=30),
        usage=Usage(balance_used_minor=3640),
    )

    assert result.suggested_minor == 6042
    assert texts(result)[2:] == ["Prepaid balance used: CN¥36.40", "Handling fee of 5% on CN¥63.60"]


def test_balance_used_beyond_what_is_left_takes_the_total_to_zero_not_below(in_request):
    # 199.00 - 50.00 = 149.00 left; 150.00 of balance used deducts only the 149.00; no fee on 0.
    result = suggest(
        terms(),
        paid_minor=19900,
        currency="CNY",
        purchase_date=None,
        cancellation_date=None,
        usage=Usage(balance_used_minor=15000),
    )

    assert result.suggested_minor == 0
    assert texts(result) == [
        "Amount paid: CN¥199.00",
        "Purchase and cancellation dates not given: the cooling-off period cannot apply",
        "Non-refundable: Number activation fee, CN¥50.00",
        "Prepaid balance used: CN¥150.00, deducted only up to the CN¥149.00 remaining",
    ]


def test_items_worth_more_than_was_paid_leave_nothing_and_never_go_negative(in_request):
    # 30.00 paid; the 50.00 activation fee deducts only the 30.00 there is.
    result = suggest(
        terms(), paid_minor=3000, currency="CNY", purchase_date=None, cancellation_date=PURCHASED
    )

    assert result.suggested_minor == 0
    assert (
        "Non-refundable: Number activation fee, CN¥50.00, deducted only up to the CN¥30.00 remaining"
        in texts(result)
    )
    assert min(line.total_minor for line in result.lines) == 0


def test_unknown_usage_keeps_the_base_and_says_so(in_request):
    # 199.00 - 50.00 = 149.00, nothing for use; fee 5% = 7.45; 149.00 - 7.45 = 141.55
    result = suggest(
        terms(),
        paid_minor=19900,
        currency="CNY",
        purchase_date=PURCHASED,
        cancellation_date=PURCHASED + timedelta(days=40),
    )

    assert result.suggested_minor == 14155
    assert "Service usage not given: nothing deducted for use, CN¥149.00 kept" in texts(result)


def test_without_pro_rata_nothing_is_refunded_after_the_cooling_off_period(in_request):
    # 199.00 - 50.00 = 149.00, then the policy refunds no service at all: 0, and no fee line.
    result = suggest(
        terms(prorate_unused_balance=False),
        paid_minor=19900,
        currency="CNY",
        purchase_date=PURCHASED,
        cancellation_date=PURCHASED + timedelta(days=8),
        usage=Usage(service_days_total=365, service_days_used=8),
    )

    assert result.suggested_minor == 0
    assert (
        texts(result)[-1]
        == "After the cooling-off period this policy refunds neither used nor unused service"
    )
    assert result.lines[-1].amount_minor == -14900
    assert not any("Handling fee" in text for text in texts(result))


@pytest.mark.parametrize(
    ("paid_minor", "fee_line", "suggested_minor"),
    [
        # 1000.00 × 5% = 50.00, over the cap: 30.00. 1000.00 - 30.00 = 970.00
        (100000, "Handling fee of 5% on CN¥1,000.00 is CN¥50.00, capped at CN¥30.00", 97000),
        # 600.00 × 5% = 30.00, exactly the cap: the fee itself. 600.00 - 30.00 = 570.00
        (60000, "Handling fee of 5% on CN¥600.00", 57000),
        # 500.00 × 5% = 25.00, under the cap. 500.00 - 25.00 = 475.00
        (50000, "Handling fee of 5% on CN¥500.00", 47500),
    ],
)
def test_the_handling_fee_cap_binds_only_above_it(in_request, paid_minor, fee_line, suggested_minor):
    result = suggest(
        terms(non_refundable_items=[]),
        paid_minor=paid_minor,
        currency="CNY",
        purchase_date=None,
        cancellation_date=None,
    )

    assert texts(result)[-1] == fee_line
    assert result.suggested_minor == suggested_minor


def test_without_a_cap_the_whole_percentage_is_charged(in_request):
    # 1000.00 × 5% = 50.00, no cap: 950.00
    result = suggest(
        terms(non_refundable_items=[], handling_fee_cap=None),
        paid_minor=100000,
        currency="CNY",
        purchase_date=None,
        cancellation_date=None,
    )
    assert result.suggested_minor == 95000


def test_a_zero_fee_adds_no_line(in_request):
    result = suggest(
        terms(non_refundable_items=[], handling_fee_percent="0"),
        paid_minor=100000,
        currency="CNY",
        purchase_date=None,
        cancellation_date=None,
    )
    assert result.suggested_minor == 100000
    assert not any("Handling fee" in text for text in texts(result))


def test_yen_have_no_minor_units_and_every_step_rounds_half_up(in_request):
    # JPY has 0 decimals. Paid ¥10,041; a 3-day pass used for 1 day.
    #   item "50.50" -> ¥51 (half up; banker's rounding would give 50)    10,041 - 51 = 9,990
    #   9,990 × 2/3 = 6,660 exactly                                        deducts 3,330
    #   fee 2.5% of 6,660 = 166.5 -> ¥167 (half up; banker's: 166)         6,660 - 167 = 6,493
    result = suggest(
        terms(
            non_refundable_items=[{"name": "Activation", "amount": "50.50"}],
            handling_fee_percent="2.5",
            handling_fee_cap=None,
        ),
        paid_minor=10041,
        currency="JPY",
        purchase_date=PURCHASED,
        cancellation_date=PURCHASED + timedelta(days=10),
        usage=Usage(service_days_total=3, service_days_used=1),
    )

    assert result.suggested_minor == 6493
    assert [line.amount_minor for line in result.lines] == [10041, 0, -51, -3330, -167]
    assert texts(result)[2:] == [
        "Non-refundable: Activation, ¥51",
        "Service used 1 of 3 days: 2/3 of ¥9,990 refunded",
        "Handling fee of 2.5% on ¥6,660",
    ]


def test_the_lines_are_shown_in_the_page_locale(in_request):
    # The sentences wait for their translation; the amounts are already Chinese-formatted.
    with force_locale("zh_CN"):
        result = suggest(
            terms(),
            paid_minor=19900,
            currency="CNY",
            purchase_date=PURCHASED,
            cancellation_date=PURCHASED + timedelta(days=120),
            usage=Usage(service_days_total=365, service_days_used=120),
        )

    assert "¥199.00" in result.lines[0].text
    assert "¥50.00" in result.lines[2].text
    assert not any("CN¥" in text for text in texts(result))


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"paid_minor": -1}, "amount"),
        ({"currency": "XYZ"}, "currency"),
        ({"cancellation_date": PURCHASED - timedelta(days=1)}, "cancellation_date"),
        ({"usage": Usage(service_days_total=365, service_days_used=366)}, "service_days_used"),
        ({"usage": Usage(service_days_total=365, service_days_used=-1)}, "service_days_used"),
        ({"usage": Usage(service_days_total=0, service_days_used=0)}, "service_days_total"),
        ({"usage": Usage(service_days_used=10)}, "service_days_total"),
        ({"usage": Usage(service_days_total=10)}, "service_days_used"),
        ({"usage": Usage(balance_used_minor=-5)}, "balance_used_minor"),
    ],
)
def test_impossible_input_is_refused_naming_the_field(in_request, changes, field):
    arguments = {
        "paid_minor": 19900,
        "currency": "CNY",
        "purchase_date": PURCHASED,
        "cancellation_date": PURCHASED,
    }
    with pytest.raises(DomainError) as refused:
        suggest(terms(), **{**arguments, **changes})
    assert refused.value.field == field
    assert refused.value.message


# --- properties ---------------------------------------------------------------------------------


def amounts(high: int = 30000) -> st.SearchStrategy[str]:
    return st.integers(0, high).map(lambda cents: f"{cents // 100}.{cents % 100:02d}")


percents = st.integers(0, 10000).map(lambda hundredths: f"{hundredths // 100}.{hundredths % 100:02d}")


@st.composite
def any_terms(draw, percent=percents) -> Terms:
    return Terms.from_json(
        {
            "cooling_off_days": draw(st.integers(0, 30)),
            "prorate_unused_balance": draw(st.booleans()),
            "non_refundable_items": [
                {"name": f"item {n}", "amount": amount}
                for n, amount in enumerate(draw(st.lists(amounts(), max_size=3)))
            ],
            "handling_fee_percent": draw(percent),
            "handling_fee_cap": draw(st.none() | amounts(100000)),
            "payout_days": 15,
        }
    )


currencies = st.sampled_from(["CNY", "JPY", "USD", "KWD"])
cancellations = st.none() | st.integers(0, 400).map(lambda days: PURCHASED + timedelta(days=days))
usages = st.one_of(
    st.just(Usage()),
    st.integers(1, 400).flatmap(
        lambda total: st.integers(0, total).map(
            lambda used: Usage(service_days_total=total, service_days_used=used)
        )
    ),
    st.integers(0, 10**7).map(lambda used: Usage(balance_used_minor=used)),
)


@given(any_terms(), st.integers(0, 10**8), currencies, cancellations, usages)
def test_the_suggestion_is_between_nothing_and_what_was_paid_and_the_lines_add_up(
    in_request, policy, paid_minor, currency, cancelled, usage
):
    result = suggest(
        policy,
        paid_minor=paid_minor,
        currency=currency,
        purchase_date=PURCHASED,
        cancellation_date=cancelled,
        usage=usage,
    )

    assert 0 <= result.suggested_minor <= paid_minor
    assert result.lines[0].amount_minor == result.lines[0].total_minor == paid_minor
    running = 0
    for line in result.lines:
        running += line.amount_minor
        assert line.total_minor == running
        assert line.total_minor >= 0
    assert result.lines[-1].total_minor == result.suggested_minor


@given(any_terms(), st.integers(0, 10**8), currencies, cancellations, st.integers(1, 400), st.data())
def test_more_days_used_never_raises_the_suggestion(
    in_request, policy, paid_minor, currency, cancelled, total, data
):
    fewer = data.draw(st.integers(0, total))
    more = data.draw(st.integers(fewer, total))

    def suggestion(used: int) -> int:
        usage = Usage(service_days_total=total, service_days_used=used)
        return suggest(
            policy,
            paid_minor=paid_minor,
            currency=currency,
            purchase_date=PURCHASED,
            cancellation_date=cancelled,
            usage=usage,
        ).suggested_minor

    assert suggestion(more) <= suggestion(fewer)


@given(st.data(), st.integers(0, 10**8), currencies, cancellations, usages)
def test_a_higher_handling_fee_never_raises_the_suggestion(
    in_request, data, paid_minor, currency, cancelled, usage
):
    lower = data.draw(st.integers(0, 10000))
    higher = data.draw(st.integers(lower, 10000))
    policy = data.draw(any_terms(percent=st.just("0")))

    def suggestion(hundredths: int) -> int:
        fee = Terms.from_json(
            {**policy.to_json(), "handling_fee_percent": f"{hundredths // 100}.{hundredths % 100:02d}"}
        )
        return suggest(
            fee,
            paid_minor=paid_minor,
            currency=currency,
            purchase_date=PURCHASED,
            cancellation_date=cancelled,
            usage=usage,
        ).suggested_minor

    assert suggestion(higher) <= suggestion(lower)
