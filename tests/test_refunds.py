"""Refund decisions as agents, managers, customers and regulators meet them: which policy
version a request is judged under, the calculator's arithmetic on the ticket's refund
page, the rules a decision must keep, the second person's approval, the final response
the customer reads, payouts against their deadline, outside escalations, tenants kept
apart, and the audit chain over all of it.

Everything goes through the pages, as people use them; what is checked is what a person
sees (pages, the customer's tracking page and email) and what a regulator would read
(the audit trail). Times are Shanghai's; the policy is docs/examples/refund-policy.json:
7 days' cooling-off, unused service pro rata, a 50.00 activation fee, a 5 % handling fee
capped at 30.00, payout within 15 days."""

import hashlib
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from html import unescape
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from crm.audit.models import AuditEvent
from crm.customers.models import Customer
from crm.notify.models import OutboxMessage
from crm.refunds.models import Escalation, Payout, RefundDecision
from crm.sla.models import Clock
from crm.tickets import service as tickets
from crm.tickets.links import tracking_url
from crm.tickets.models import Ticket
from tenants import CurrentTenant
from tests.conftest import StaffUser, acting_for, login, submit, unique
from tests.test_policies import independent_sha256, published, stored_row
from tests.test_portal import PNG
from tests.test_sla import assert_audit_chain_verifies, shanghai, travel
from tests.test_sla_pages import deadlines_card, field_feedback, form_fields, page_form, send_page_form
from tests.test_ticket_service import refund_request

POLICY_DAY = shanghai(2026, 8, 3, 10)  # version 1 is published, a Monday
WEDNESDAY_10AM = shanghai(2026, 9, 16, 10)  # requests are decided
PURCHASED = date(2026, 9, 1)

# The worked example, by the calculator's rules: 199.00 paid on Sep 1, cancelled on
# Sep 15 (14 days: after the cooling-off period) having used 14 of 30 days of service.
#   199.00 - 50.00 activation fee                = 149.00
#   149.00 x 16/30 = 79.4666…, rounded           =  79.47  (69.53 deducted)
#   5 % of 79.47 = 3.9735, rounded, under the cap =   3.97
#   suggested                                    =  75.50
WORKED = {"cancellation_date": "2026-09-15", "service_days_total": "30", "service_days_used": "14"}
PARTIAL = {
    **WORKED,
    "outcome": "approved_partial",
    "reason_code": "unused_service",
    "clause": "Clause 2, unused balance",
    "amount": "75.50",
}
# Cancelled on Sep 5, within the 7 days: the whole amount paid.
FULL = {
    "cancellation_date": "2026-09-05",
    "outcome": "approved_full",
    "reason_code": "cooling_off",
    "clause": "Clause 1, cooling-off",
}
DENIED = {
    **WORKED,
    "outcome": "denied",
    "reason_code": "insufficient_evidence",
    "clause": "Clause 6, evidence",
    "amount": "0",
    "differs_reason": "No invoice was ever provided.",
}
CSRF_ANY = re.compile(r'csrf_token" type="hidden" value="([^"]+)"')


# --- the world the tests set up ----------------------------------------------------------


@dataclass(frozen=True)
class Desk:
    """A Shanghai provider with version 1 of the example policy in force since August,
    an agent, and two managers: one to propose, one to approve."""

    tenant: CurrentTenant
    agent: StaffUser
    manager: StaffUser
    approver: StaffUser
    policy: dict  # version 1's row as the database holds it


@dataclass(frozen=True)
class Received:
    number: int
    reference: str
    tracking_path: str


@pytest.fixture
def desk(app, make_tenant, make_user) -> Desk:
    with travel(POLICY_DAY):
        tenant = make_tenant(name="Huabei Telecom 华北通信")
        staff = {name: make_user(tenant, role) for name, role in STAFF.items()}
        number = published(app, tenant)
    return Desk(tenant, **staff, policy=stored_row(app, tenant, number))


STAFF = {"agent": "agent", "manager": "manager", "approver": "manager"}


def received(
    app,
    tenant,
    *,
    paid: str | None = "199.00",
    purchased: date | None = PURCHASED,
    locale: str = "zh_CN",
    reason: str = "unused_balance",
) -> Received:
    """A refund request from the hosted form, received now."""
    request = refund_request(
        reason=reason,
        purchase_date=purchased,
        amount=Decimal(paid) if paid else None,
        customer={"locale": locale, "email": "xm@example.test"},
    )
    with acting_for(app, tenant) as session:
        submission = tickets.submit_refund_request(request, nonce=unique("n"), ip=None)
        ticket = submission.ticket
        shown = Received(
            ticket.number, ticket.reference, urlsplit(tracking_url(submission.tracking_token)).path
        )
        session.commit()
    return shown


def staff_client(app, tenant, user: StaffUser):
    """A browser of its own, signed in as ``user`` (call it where the clock now stands)."""
    client = app.test_client()
    assert login(client, tenant, user).status_code == 302
    return client


def refund_url(tenant, number: int, tail: str = "") -> str:
    return f"/t/{tenant.slug}/tickets/{number}/refund{tail}"


def decide(client, tenant, number: int, action: str = "propose", **fields: str):
    """Fill in the refund page's decision form as a person would, and press a button:
    "calculate", "preview", or ("propose") preview and then confirm on the preview page."""
    changes = {f"decision-{name}": value for name, value in fields.items()}
    step = "preview" if action == "propose" else action
    shown = send_page_form(
        client, refund_url(tenant, number), {**changes, "action": step}, action=f"/tickets/{number}/refund"
    )
    if action != "propose" or not is_preview(shown):
        return shown
    return confirm_preview(client, shown, "propose", f"/tickets/{number}/refund")


def is_preview(response) -> bool:
    return response.status_code == 200 and 'id="preview-heading"' in response.text


def confirm_preview(client, preview, button: str, action: str, name: str = "action"):
    """Press the button (named ``name``, of value ``button``) of the preview page's form
    that posts to ``action``."""
    target, fields = page_form(preview.text, action)
    fields[name] = button
    return client.post(target, data=fields.to_dict(flat=False))


def post_by_hand(client, page_url: str, target: str, fields: dict, *, form: str = ""):
    """POST ``fields`` of the form named ``form`` (its prefix) to ``target``, with the CSRF
    token of the page the person is on, whether or not that page offers the form."""
    token = CSRF_ANY.search(client.get(page_url).text)
    assert token, page_url
    token_field = f"{form}-csrf_token" if form else "csrf_token"
    return client.post(target, data={token_field: token.group(1), **fields})


def second_person(client, tenant, number: int, verdict: str, note: str = ""):
    """The approval form as a manager finds it on the page: a note, then send back, or
    approve: the final response's preview, and "Approve and send" there."""
    page = client.get(refund_url(tenant, number)).text
    _action, fields = page_form(page, "")
    fields["approval-note"] = note
    response = client.post(refund_url(tenant, number, f"/{verdict}"), data=fields)
    if verdict != "approve" or not is_preview(response):
        return response
    return confirm_preview(client, response, "send", "/refund/approve")


def verdict_by_hand(client, tenant, number: int, verdict: str):
    """An approval sent by someone whose page offers no approval form."""
    url = refund_url(tenant, number)
    return post_by_hand(client, url, f"{url}/{verdict}", {"approval-note": ""}, form="approval")


def close_by_hand(client, tenant, number: int):
    """The ticket page's Close button, its confirmation ticked."""
    url = f"/t/{tenant.slug}/tickets/{number}"
    return post_by_hand(client, url, f"{url}/close", {"close-confirm": "y"}, form="close")


def resolve_on_page(client, tenant, number: int, body: str, **changes):
    """The ticket page's Resolve: the preview of the final response, then "Send"."""
    url = f"/t/{tenant.slug}/tickets/{number}"
    shown = send_page_form(
        client, url, {"resolve-body": body, "step": "preview", **changes}, action=f"/tickets/{number}/resolve"
    )
    if not is_preview(shown):
        return shown
    target, fields = page_form(shown.text, f"/tickets/{number}/resolve")
    fields["step"] = "send"
    return client.post(target, data=fields.to_dict(flat=False))


def pay(client, tenant, number: int, amount: str, *, paid_at: str = "2026-09-16T10:00", receipt=None):
    files = {"payout-receipt": (receipt, "回单.png")} if receipt else None
    return send_page_form(
        client,
        refund_url(tenant, number),
        {
            "payout-amount": amount,
            "payout-method": "alipay",
            "payout-reference": f"ALI-{amount}",
            "payout-paid_at": paid_at,
        },
        action=f"/tickets/{number}/payouts",
        files=files,
    )


def text_of(html: str) -> str:
    """What a person reads in the page's main part (or in a piece of a page): tags
    dropped, entities decoded, white space collapsed."""
    if "<main" in html:
        html = html[html.index("<main") : html.index("</main>")]
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def page_text(client, url: str) -> str:
    page = client.get(url)
    assert page.status_code == 200, (url, page.status_code)
    return text_of(page.text)


def clock_line(client, tenant, number: int, label: str) -> str:
    """The ticket's Deadlines card entry for one clock, as read."""
    card = deadlines_card(client.get(f"/t/{tenant.slug}/tickets/{number}").text)
    entries = [text_of(item) for item in re.findall(r"<li\b[^>]*>(.*?)</li>", card, re.S)]
    found = [entry for entry in entries if entry.startswith(label)]
    assert len(found) == 1, (label, entries)
    return found[0]


def calculation_rows(page: str) -> list[tuple[str, str, str]]:
    start = page.index('id="calc-heading"')
    table = page[start : page.index("</table>", start)]
    rows = re.findall(r"<tr><td>(.*?)</td><td[^>]*>(.*?)</td><td[^>]*>(.*?)</td></tr>", table)
    return [tuple(unescape(cell) for cell in row) for row in rows]


def events(app, tenant, action: str) -> list[AuditEvent]:
    with acting_for(app, tenant) as session:
        query = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
        return list(session.scalars(query))


def record_state(app, tenant) -> dict:
    """Everything a refused request must leave as it was."""
    with acting_for(app, tenant) as session:

        def count(model) -> int:
            return session.scalar(select(func.count()).select_from(model))

        return {
            "audit events": count(AuditEvent),
            "decisions": count(RefundDecision),
            "payouts": count(Payout),
            "escalations": count(Escalation),
            "clocks": count(Clock),
            "customers": count(Customer),
            "outbox": count(OutboxMessage),
            "tickets": [
                (t.number, t.status, t.escalated) for t in session.scalars(select(Ticket).order_by(Ticket.id))
            ],
        }


def status_of(app, tenant, number: int) -> str:
    with acting_for(app, tenant):
        return tickets.ticket_by_number(number).status


# --- 1. the version a request is judged under ------------------------------------------------


def test_the_version_in_force_on_the_purchase_date_applies_else_the_one_at_receipt(app, desk):
    """v2 takes effect on Sep 10 at 10:00. A purchase on Sep 10 was made under v1, in force
    at the start of that day; one on Sep 11 under v2. Without a purchase date, or with one
    before any version, the version the request was received under applies."""
    tenant = desk.tenant
    with travel(shanghai(2026, 9, 5, 10)):
        undated_early = received(app, tenant, purchased=None)
    with travel(shanghai(2026, 9, 10, 10)):
        second = published(app, tenant, payout_days=10)
    with travel(WEDNESDAY_10AM):
        expected = {
            received(app, tenant): 1,  # bought Sep 1
            received(app, tenant, purchased=date(2026, 9, 10)): 1,
            received(app, tenant, purchased=date(2026, 9, 11)): second,
            received(app, tenant, purchased=None): second,
            received(app, tenant, purchased=date(2026, 7, 1)): second,  # before any version
            undated_early: 1,
        }
        agent = staff_client(app, tenant, desk.agent)
        for ticket, number in expected.items():
            page = agent.get(refund_url(tenant, ticket.number)).text
            chosen = form_fields(page, f"/tickets/{ticket.number}/refund")["decision-version_number"]
            assert chosen == str(number), ticket.reference
            assert f"Applicable: version {number} (in force on the purchase date" in text_of(page)


def test_judging_under_another_version_needs_a_written_reason(app, desk):
    tenant = desk.tenant
    with travel(shanghai(2026, 9, 10, 10)):
        second = published(app, tenant, payout_days=10)
    with travel(WEDNESDAY_10AM):
        ticket = received(app, tenant)
        agent = staff_client(app, tenant, desk.agent)
        before = record_state(app, tenant)
        refused = decide(agent, tenant, ticket.number, version_number=str(second), **FULL, amount="199.00")
        assert refused.status_code == 422
        assert "Say why this request is judged under version 2 rather than 1." in field_feedback(
            refused.text, "decision-version_reason"
        )
        assert record_state(app, tenant) == before

        accepted = decide(
            agent,
            tenant,
            ticket.number,
            version_number=str(second),
            version_reason="The customer renewed under version 2 on Sep 11.",
            **FULL,
            amount="199.00",
        )
        assert accepted.status_code == 302
        page = page_text(agent, refund_url(tenant, ticket.number))
    assert "Why this version The customer renewed under version 2 on Sep 11." in page
    assert "Policy Version 2 , Clause 1, cooling-off" in page
    (proposed,) = events(app, tenant, "refund.decision_proposed")
    assert proposed.data["policy_number"] == 2
    assert proposed.data["policy_sha256"] == stored_row(app, tenant, second)["sha256"]


# --- 2. the calculator ---------------------------------------------------------------------


def test_the_calculator_shows_the_suggested_refund_line_by_line_and_records_nothing(app, desk):
    tenant = desk.tenant
    with travel(WEDNESDAY_10AM):
        ticket = received(app, tenant)
        agent = staff_client(app, tenant, desk.agent)
        before = record_state(app, tenant)
        response = decide(agent, tenant, ticket.number, action="calculate", **WORKED)
        assert response.status_code == 200
        assert "Suggested refund: CN¥75.50" in text_of(response.text)
        assert calculation_rows(response.text) == [
            ("Amount paid: CN¥199.00", "CN¥199.00", "CN¥199.00"),
            ("Cancelled 14 days after purchase, after the 7-day cooling-off period", "CN¥0.00", "CN¥199.00"),
            ("Non-refundable: Number activation fee, CN¥50.00", "-CN¥50.00", "CN¥149.00"),
            ("Service used 14 of 30 days: 16/30 of CN¥149.00 refunded", "-CN¥69.53", "CN¥79.47"),
            ("Handling fee of 5% on CN¥79.47", "-CN¥3.97", "CN¥75.50"),
        ]
        # What the agent typed stays in the form, ready to record.
        assert (
            form_fields(response.text, f"/tickets/{ticket.number}/refund")["decision-service_days_used"]
            == "14"
        )
        assert record_state(app, tenant) == before

        within = decide(agent, tenant, ticket.number, action="calculate", cancellation_date="2026-09-05")
        assert "Suggested refund: CN¥199.00" in text_of(within.text)
        assert calculation_rows(within.text)[-1] == (
            "Cancelled 4 days after purchase, within the 7-day cooling-off period: full refund",
            "CN¥0.00",
            "CN¥199.00",
        )


def test_the_calculator_speaks_the_agents_language(app, desk):
    tenant = desk.tenant
    with travel(WEDNESDAY_10AM):
        ticket = received(app, tenant)
        agent = staff_client(app, tenant, desk.agent)
        queue = f"/t/{tenant.slug}/tickets"
        assert (
            post_by_hand(agent, queue, f"/t/{tenant.slug}/language", {"locale": "zh_CN"}).status_code == 302
        )
        response = decide(agent, tenant, ticket.number, action="calculate", **WORKED)
    assert "建议退款金额：¥75.50" in text_of(response.text)
    assert calculation_rows(response.text)[0][1:] == ("¥199.00", "¥199.00")
    assert calculation_rows(response.text)[-1][1:] == ("-¥3.97", "¥75.50")


# --- 3. what a decision must keep to ---------------------------------------------------------


@pytest.mark.parametrize(
    "fields, field_id, message",
    [
        (
            {**PARTIAL, "amount": "199.01"},
            "decision-amount",
            "The refund cannot be more than the amount paid.",
        ),
        ({**DENIED, "amount": "10.00"}, "decision-amount", "A denial refunds nothing: the amount must be 0."),
        ({**PARTIAL, "outcome": "approved_full", "amount": "150.00"}, "decision-amount", "A full refund is"),
        (
            {**PARTIAL, "amount": "199.00", "differs_reason": "Goodwill."},
            "decision-amount",
            "A partial refund is more than 0 and less than the amount paid.",
        ),
        (
            {**PARTIAL, "amount": "0", "differs_reason": "Goodwill."},
            "decision-amount",
            "A partial refund is more than 0 and less than the amount paid.",
        ),
        (
            {**PARTIAL, "amount": "80.00"},
            "decision-differs_reason",
            "The amount differs from the suggested refund: say why.",
        ),
        ({**PARTIAL, "reason_code": "because_i_say_so"}, "decision-reason_code", "Not a valid choice"),
        ({**PARTIAL, "clause": " "}, "decision-clause", "This field is required."),
        ({**PARTIAL, "outcome": ""}, "decision-outcome", "Choose the outcome."),
        ({**PARTIAL, "amount": "75.505"}, "decision-amount", "Use at most 2 decimal places."),
    ],
    ids=[
        "above-paid",
        "denial-with-money",
        "full-not-whole",
        "partial-whole",
        "partial-zero",
        "differs-unexplained",
        "unknown-reason",
        "no-clause",
        "no-outcome",
        "fraction-of-a-fen",
    ],
)
def test_a_decision_that_breaks_a_rule_is_refused_beside_its_field_and_nothing_is_written(
    app, desk, fields, field_id, message
):
    tenant = desk.tenant
    with travel(WEDNESDAY_10AM):
        ticket = received(app, tenant)
        agent = staff_client(app, tenant, desk.agent)
        before = record_state(app, tenant)
        response = decide(agent, tenant, ticket.number, **fields)
        assert 400 <= response.status_code < 500
        feedback = field_feedback(response.text, field_id)
        assert message in feedback and "is-invalid" in feedback
        assert record_state(app, tenant) == before
        assert status_of(app, tenant, ticket.number) == "new"
        # The form comes back as typed, to be corrected.
        assert (
            form_fields(response.text, f"/tickets/{ticket.number}/refund")["decision-clause"]
            == fields["clause"]
        )


# --- 4. a decision below the threshold is final at once --------------------------------------

FINAL_WORDS = {
    "en": {
        "subject": "Our decision on your request {reference}",
        "lines": [
            "We have decided on your request {reference}.",
            "Outcome: Approved in part",
            "Amount refunded: CN¥75.50",
            "Reason: Unused balance or service time, pro rata",
            "Policy: refund policy version 1, Clause 2, unused balance",
            "We will pay the refund by October 1, 2026, to the account you paid from",
            "If you do not agree with this decision, you can turn to:",
            "the 12315 platform of the market regulator: www.12315.cn, or call 12315",
            "call 12300",
        ],
    },
    "zh_CN": {
        "subject": "关于您的申请 {reference} 的处理决定",
        "lines": [
            "我们已对您的申请 {reference} 作出处理决定。",
            "处理结果：部分批准",
            "退款金额：¥75.50",
            "理由：未使用的余额或服务期，按比例退还",
            "依据：退款政策第 1 版，Clause 2, unused balance",
            "我们将在 2026年10月1日 前退款",
            "如您对本决定有异议，可以向以下机构反映：",
            "市场监管部门的 12315 平台：www.12315.cn，或拨打 12315",
            "拨打 12300",
        ],
    },
}


@pytest.mark.parametrize("locale", ["en", "zh_CN"])
def test_a_decision_below_the_threshold_is_final_at_once_and_told_to_the_customer(app, client, desk, locale):
    tenant, words = desk.tenant, FINAL_WORDS[locale]
    with travel(WEDNESDAY_10AM):
        ticket = received(app, tenant, locale=locale)
        agent = staff_client(app, tenant, desk.agent)
        response = decide(agent, tenant, ticket.number, **PARTIAL)
        assert response.status_code == 302
        refund_page = page_text(agent, refund_url(tenant, ticket.number))
        ticket_page = page_text(agent, f"/t/{tenant.slug}/tickets/{ticket.number}")
        tracking = page_text(client, ticket.tracking_path)
        payout = clock_line(agent, tenant, ticket.number, "Payout")

    assert "Decision recorded; the final response has been sent to the customer." in refund_page
    assert "Decision Final" in refund_page and "Resolved" in refund_page
    expected = [line.format(reference=ticket.reference) for line in words["lines"]]
    for line in expected:
        assert line in ticket_page, line
        assert line in tracking, line
    assert status_of(app, tenant, ticket.number) == "resolved"

    with acting_for(app, tenant) as session:
        (email,) = session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.subject == words["subject"].format(reference=ticket.reference)
            )
        )
        assert email.to_address == "xm@example.test"
        for line in expected:
            assert line in email.body, line

    # Paid by the end of Oct 1 (Sep 16 + 15 days), Shanghai time.
    assert "On track Due end of Thu, Oct 1" in payout
    assert "15 calendar days" in payout

    version_id, sha256 = desk.policy["id"], desk.policy["sha256"]
    assert sha256 == independent_sha256(desk.policy["texts"], desk.policy["terms"])
    for action in ("refund.decision_proposed", "refund.final_response_sent"):
        (event,) = events(app, tenant, action)
        assert (event.data["policy_version_id"], event.data["policy_sha256"]) == (version_id, sha256)
        assert event.data["policy_number"] == 1
    (proposed,) = events(app, tenant, "refund.decision_proposed")
    assert proposed.data["amount_minor"] == 7550 and proposed.data["suggested_minor"] == 7550
    assert proposed.data["needs_approval"] is False


# --- 5. the second person --------------------------------------------------------------------


def test_above_the_threshold_a_second_manager_approves_and_the_proposer_cannot(app, desk):
    tenant = desk.tenant
    with travel(WEDNESDAY_10AM):
        big = received(app, tenant, paid="1200.00")
        other = received(app, tenant)
        manager = staff_client(app, tenant, desk.manager)
        response = decide(manager, tenant, big.number, **FULL, amount="1200.00")
        assert response.status_code == 302
        page = page_text(manager, refund_url(tenant, big.number))
        assert "The decision waits for a manager's approval." in page
        assert "Decision Awaiting approval" in page
        assert "A manager other than the one who proposed it must approve it." in page
        assert "Approve and send the final response" not in page
        assert status_of(app, tenant, big.number) == "pending_approval"

        queue = page_text(manager, f"/t/{tenant.slug}/tickets?view=pending_approval")
        assert big.reference in queue and other.reference not in queue

        # The proposer, though a manager, and an agent: refused, and nothing changes.
        agent = staff_client(app, tenant, desk.agent)
        before = record_state(app, tenant)
        own = verdict_by_hand(manager, tenant, big.number, "approve")
        assert own.status_code == 409
        assert "A decision needs a second person: you proposed this one." in text_of(own.text)
        by_agent = verdict_by_hand(agent, tenant, big.number, "approve")
        assert 400 <= by_agent.status_code < 500
        assert "Only a manager can approve or reject a refund decision." in text_of(by_agent.text)
        assert record_state(app, tenant) == before

        approver = staff_client(app, tenant, desk.approver)
        approved = second_person(approver, tenant, big.number, "approve", note="Checked the contract.")
        assert approved.status_code == 302
        page = page_text(approver, refund_url(tenant, big.number))
        tracking = page_text(app.test_client(), big.tracking_path)

    assert "Approved; the final response has been sent to the customer." in page
    assert "Decision Final" in page and "Checked the contract." in page
    assert status_of(app, tenant, big.number) == "resolved"
    assert "处理结果：全额批准" in tracking and "退款金额：¥1,200.00" in tracking
    (event,) = events(app, tenant, "refund.decision_approved")
    assert event.actor_id == str(desk.approver.id)
    assert event.data["proposed_by"] == desk.manager.id
    assert event.data["policy_sha256"] == desk.policy["sha256"]
    assert len(events(app, tenant, "refund.final_response_sent")) == 1


def test_sending_a_decision_back_needs_a_note_and_reopens_the_ticket(app, desk):
    tenant = desk.tenant
    with travel(WEDNESDAY_10AM):
        big = received(app, tenant, paid="1200.00")
        agent = staff_client(app, tenant, desk.agent)
        assert decide(agent, tenant, big.number, **FULL, amount="1200.00").status_code == 302
        approver = staff_client(app, tenant, desk.approver)

        before = record_state(app, tenant)
        silent = second_person(approver, tenant, big.number, "reject")
        assert 400 <= silent.status_code < 500
        assert "This field is required." in field_feedback(silent.text, "approval-note")
        assert record_state(app, tenant) == before

        sent_back = second_person(approver, tenant, big.number, "reject", note="Ask for the contract first.")
        assert sent_back.status_code == 302
        page = page_text(agent, refund_url(tenant, big.number))
    assert "Decision Sent back" in page and "Ask for the contract first." in page
    assert status_of(app, tenant, big.number) == "open"
    # The agent can decide again; the customer has been told nothing.
    assert "Preview the decision" in page
    assert events(app, tenant, "refund.final_response_sent") == []
    (rejected,) = events(app, tenant, "refund.decision_rejected")
    assert rejected.actor_id == str(desk.approver.id)
    assert rejected.data["policy_version_id"] == desk.policy["id"]
    assert rejected.data["note_sha256"] == hashlib.sha256(b"Ask for the contract first.").hexdigest()


def test_denying_an_escalated_ticket_needs_approval_even_at_nothing(app, desk):
    tenant = desk.tenant
    with travel(WEDNESDAY_10AM):
        plain, escalated = received(app, tenant), received(app, tenant)
        agent = staff_client(app, tenant, desk.agent)
        record_escalation(agent, tenant, escalated.number)
        assert decide(agent, tenant, plain.number, **DENIED).status_code == 302
        assert decide(agent, tenant, escalated.number, **DENIED).status_code == 302
        assert status_of(app, tenant, plain.number) == "resolved"
        assert status_of(app, tenant, escalated.number) == "pending_approval"
        approver = staff_client(app, tenant, desk.approver)
        assert second_person(approver, tenant, escalated.number, "approve").status_code == 302
        tracking = page_text(app.test_client(), escalated.tracking_path)
    assert status_of(app, tenant, escalated.number) == "resolved"
    assert "处理结果：拒绝" in tracking and "理由：证据不足" in tracking
    assert "退款金额" not in tracking and "前退款" not in tracking  # nothing to pay, no payout date
    assert [event.data["needs_approval"] for event in events(app, tenant, "refund.decision_proposed")] == [
        False,
        True,
    ]


def test_a_decision_waiting_for_approval_cannot_be_bypassed_by_resolving_the_ticket(app, desk):
    """The ticket page still offers Resolve while a decision waits for a manager: the
    customer would get the agent's own answer and the approval rule would not hold."""
    tenant = desk.tenant
    with travel(WEDNESDAY_10AM):
        big = received(app, tenant, paid="1200.00")
        agent = staff_client(app, tenant, desk.agent)
        assert decide(agent, tenant, big.number, **FULL, amount="1200.00").status_code == 302
        page = agent.get(f"/t/{tenant.slug}/tickets/{big.number}").text
        assert f"/tickets/{big.number}/resolve" not in page  # not offered
        response = submit(  # and refused when sent anyway
            agent,
            f"/t/{tenant.slug}/tickets/{big.number}/resolve",
            {"resolve-body": "Your refund is approved."},
            form_page=f"/t/{tenant.slug}/tickets/{big.number}",
        )
        assert 400 <= response.status_code < 500
        assert "waits for a manager" in response.text
    assert status_of(app, tenant, big.number) == "pending_approval"


# --- 6. payouts -------------------------------------------------------------------------------


def test_payouts_cover_the_approved_amount_before_the_ticket_can_close(app, runner, desk):
    tenant = desk.tenant
    with travel(WEDNESDAY_10AM):
        ticket = received(app, tenant)
        agent = staff_client(app, tenant, desk.agent)
        assert decide(agent, tenant, ticket.number, **PARTIAL).status_code == 302

        before = record_state(app, tenant)
        too_much = pay(agent, tenant, ticket.number, "80.00")
        assert too_much.status_code == 422
        assert "That is more than is still owed (CN¥75.50)." in field_feedback(too_much.text, "payout-amount")
        assert record_state(app, tenant) == before

    with travel(shanghai(2026, 9, 18, 10)):
        agent = staff_client(app, tenant, desk.agent)
        assert pay(agent, tenant, ticket.number, "50.00").status_code == 302
        page = page_text(agent, refund_url(tenant, ticket.number))
        assert "Payout recorded." in page
        assert "Approved CN¥75.50 · paid CN¥50.00 · owed CN¥25.50" in page
        thread = page_text(agent, f"/t/{tenant.slug}/tickets/{ticket.number}")
        assert "Payout recorded. · CN¥50.00 · Alipay · ALI-50.00" in thread
        assert "On track Due end of Thu, Oct 1" in clock_line(agent, tenant, ticket.number, "Payout")

        before = record_state(app, tenant)
        refused = close_by_hand(agent, tenant, ticket.number)
        assert refused.status_code == 409
        assert "CN¥25.50 of the approved refund is not paid yet: record the payout first." in text_of(
            refused.text
        )
        assert record_state(app, tenant) == before

        paid = pay(agent, tenant, ticket.number, "25.50", paid_at="2026-09-18T09:30", receipt=PNG)
        assert paid.status_code == 302
        page = agent.get(refund_url(tenant, ticket.number)).text
        assert "Approved CN¥75.50 · paid CN¥75.50 · owed CN¥0.00" in text_of(page)
        assert "Record the payout" not in page
        receipt_link = re.search(r'<a href="([^"]+)">receipt</a>', page).group(1)
        with agent.get(receipt_link) as download:
            assert download.status_code == 200 and download.data == PNG
        payout = clock_line(agent, tenant, ticket.number, "Payout")
        assert "Met Fri, Sep 18 09:30 (due end of Thu, Oct 1)" in payout

        closed = close_by_hand(agent, tenant, ticket.number)
        assert closed.status_code == 302
    assert status_of(app, tenant, ticket.number) == "closed"

    recorded = events(app, tenant, "refund.payout_recorded")
    assert [(e.data["amount_minor"], e.data["paid_in_full"]) for e in recorded] == [
        (5000, False),
        (2550, True),
    ]
    assert recorded[0].data["receipt_sha256"] is None
    assert recorded[1].data["receipt_sha256"] == hashlib.sha256(PNG).hexdigest()
    assert recorded[1].data["paid_at"] == "2026-09-18T01:30:00.000000Z"
    assert_audit_chain_verifies(runner, tenant)


def test_a_payout_dated_before_its_approval_is_refused(app, desk):
    tenant = desk.tenant
    with travel(WEDNESDAY_10AM):
        ticket = received(app, tenant)
        agent = staff_client(app, tenant, desk.agent)
        assert decide(agent, tenant, ticket.number, **PARTIAL).status_code == 302
    with travel(shanghai(2026, 9, 18, 10)):
        agent = staff_client(app, tenant, desk.agent)
        before = record_state(app, tenant)
        early = pay(agent, tenant, ticket.number, "10.00", paid_at="2026-09-16T09:59")
        assert early.status_code == 422
        assert "The payment time cannot be before the refund was approved (Wed, Sep 16, 2026 10:00)." in (
            field_feedback(early.text, "payout-paid_at")
        )
        assert record_state(app, tenant) == before
        # The form gives minutes: paid in the minute of the approval is accepted.
        assert pay(agent, tenant, ticket.number, "10.00", paid_at="2026-09-16T10:00").status_code == 302


def test_a_payout_after_its_deadline_is_met_late(app, desk):
    tenant = desk.tenant
    with travel(WEDNESDAY_10AM):
        ticket = received(app, tenant)
        assert (
            decide(staff_client(app, tenant, desk.agent), tenant, ticket.number, **PARTIAL).status_code == 302
        )
    with travel(shanghai(2026, 10, 3, 11)):
        agent = staff_client(app, tenant, desk.agent)
        assert "Overdue Was due end of Thu, Oct 1" in clock_line(agent, tenant, ticket.number, "Payout")
        assert pay(agent, tenant, ticket.number, "75.50", paid_at="2026-10-03T10:00").status_code == 302
        payout = clock_line(agent, tenant, ticket.number, "Payout")
    assert "Met late Met Sat, Oct 3 10:00, 1 d 10 h late" in payout


def test_resolving_a_reopened_ticket_leaves_the_payout_clock_running(app, desk):
    """Money still owed after the customer reopened and the agent resolved again: the
    payout deadline must still be watched, not stopped."""
    tenant = desk.tenant
    with travel(WEDNESDAY_10AM):
        ticket = received(app, tenant)
        agent = staff_client(app, tenant, desk.agent)
        assert decide(agent, tenant, ticket.number, **PARTIAL).status_code == 302
        url = f"/t/{tenant.slug}/tickets/{ticket.number}"
        assert post_by_hand(agent, url, f"{url}/reopen", {}).status_code == 302
        resolved = resolve_on_page(agent, tenant, ticket.number, "See our decision above.")
        assert resolved.status_code == 302
        assert "On track Due end of Thu, Oct 1" in clock_line(agent, tenant, ticket.number, "Payout")


def test_deciding_again_after_a_reopen_counts_what_was_paid_and_keeps_the_payout_deadline(app, runner, desk):
    """The customer was not satisfied with a partial refund, half of it already paid: the
    new decision cannot refund less than was paid, and it does not restart the deadline.
    (The agent's new decision is a manager's to make final: the customer asked for one.)"""
    tenant = desk.tenant
    with travel(WEDNESDAY_10AM):
        ticket = received(app, tenant)
        agent = staff_client(app, tenant, desk.agent)
        assert decide(agent, tenant, ticket.number, **PARTIAL).status_code == 302
        assert pay(agent, tenant, ticket.number, "50.00").status_code == 302
    with travel(shanghai(2026, 9, 21, 10)):
        with acting_for(app, tenant) as session:
            tickets.not_satisfied(tickets.ticket_by_number(ticket.number), "只退一部分不合理。", ip=None)
            session.commit()
        agent = staff_client(app, tenant, desk.agent)
        before = record_state(app, tenant)
        less = decide(
            agent, tenant, ticket.number, **{**PARTIAL, "amount": "40.00", "differs_reason": "Re-read."}
        )
        assert less.status_code == 422
        assert "CN¥50.00 has already been paid out on this ticket: a new decision cannot refund less." in (
            field_feedback(less.text, "decision-amount")
        )
        assert record_state(app, tenant) == before

        assert decide(agent, tenant, ticket.number, **FULL, amount="199.00").status_code == 302
        assert status_of(app, tenant, ticket.number) == "pending_approval"
        approver = staff_client(app, tenant, desk.approver)
        assert second_person(approver, tenant, ticket.number, "approve").status_code == 302
        page = page_text(agent, refund_url(tenant, ticket.number))
        assert "Approved CN¥199.00 · paid CN¥50.00 · owed CN¥149.00" in page
        # Still the deadline the first approval set, not a new one from today.
        assert "On track Due end of Thu, Oct 1" in clock_line(agent, tenant, ticket.number, "Payout")
        # Paid after the new approval: a payout dated before it is refused.
        assert pay(agent, tenant, ticket.number, "149.00", paid_at="2026-09-21T10:00").status_code == 302
        assert "Met Mon, Sep 21 10:00" in clock_line(agent, tenant, ticket.number, "Payout")
    first, second = events(app, tenant, "refund.decision_proposed")
    assert first.data["replaces_decision_id"] is None
    assert second.data["replaces_decision_id"] == first.data["decision_id"]
    assert_audit_chain_verifies(runner, tenant)


def test_nothing_is_paid_on_a_denial(app, desk):
    tenant = desk.tenant
    with travel(WEDNESDAY_10AM):
        ticket = received(app, tenant)
        agent = staff_client(app, tenant, desk.agent)
        assert decide(agent, tenant, ticket.number, **DENIED).status_code == 302
        page = agent.get(refund_url(tenant, ticket.number)).text
        assert "Record the payout" not in page
        before = record_state(app, tenant)
        response = post_by_hand(
            agent,
            refund_url(tenant, ticket.number),
            f"/t/{tenant.slug}/tickets/{ticket.number}/payouts",
            {
                "payout-amount": "10.00",
                "payout-method": "alipay",
                "payout-reference": "ALI-1",
                "payout-paid_at": "2026-09-16T09:00",
            },
            form="payout",
        )
        assert response.status_code == 409
        assert "The refund was denied: there is nothing to pay." in text_of(response.text)
        assert record_state(app, tenant) == before
        # Nothing owed, nothing to wait for: the denied ticket closes.
        assert close_by_hand(agent, tenant, ticket.number).status_code == 302


# --- 7. outside escalations ------------------------------------------------------------------


def record_escalation(client, tenant, number: int, **changes: str):
    fields = {
        "escalation-body": "telecom_regulator",
        "escalation-case_number": "MIIT-2026-0915-77",
        "escalation-received_on": "2026-09-15",
        "escalation-deadline_on": "2026-09-30",
        **changes,
    }
    return send_page_form(client, refund_url(tenant, number), fields, action=f"/tickets/{number}/escalations")


def test_an_escalation_flags_the_ticket_and_its_deadline_becomes_a_clock(app, desk):
    tenant = desk.tenant
    with travel(WEDNESDAY_10AM):
        escalated, calm = received(app, tenant), received(app, tenant)
        agent = staff_client(app, tenant, desk.agent)
        response = record_escalation(agent, tenant, escalated.number)
        assert response.status_code == 302
        page = page_text(agent, refund_url(tenant, escalated.number))
        queue = agent.get(f"/t/{tenant.slug}/tickets").text
        deadline = clock_line(agent, tenant, escalated.number, "Outside body's deadline")

    assert "Escalation recorded; its deadline is on the ticket's clocks." in page
    assert "Telecom regulator · case MIIT-2026-0915-77 · received 2026-09-15 · deadline 2026-09-30" in page
    rows = {
        ref: text_of(row)
        for row in queue.split("<tr")[1:]
        for ref in (escalated.reference, calm.reference)
        if ref in row
    }
    assert "Escalated outside" in rows[escalated.reference]
    assert "Escalated outside" not in rows[calm.reference]
    # The body's deadline is Sep 30: due at the end of that day, Shanghai time.
    assert "On track Due end of Wed, Sep 30" in deadline
    (event,) = events(app, tenant, "refund.escalation_recorded")
    assert event.data == {
        "escalation_id": event.data["escalation_id"],
        "body": "telecom_regulator",
        "case_number": "MIIT-2026-0915-77",
        "received_on": "2026-09-15",
        "deadline_on": "2026-09-30",
    }


@pytest.mark.parametrize(
    "changes, field_id, message",
    [
        ({"escalation-deadline_on": "2026-09-14"}, "escalation-deadline_on", "The deadline cannot be before"),
        ({"escalation-case_number": ""}, "escalation-case_number", "This field is required."),
        ({"escalation-body": "the_press"}, "escalation-body", "Not a valid choice"),
        ({"escalation-body": ""}, "escalation-body", "Choose the body the customer went to."),
        ({"escalation-received_on": "2026-09-20"}, "escalation-received_on", "cannot be in the future"),
    ],
    ids=["deadline-before-received", "no-case-number", "unknown-body", "no-body", "received-in-future"],
)
def test_a_bad_escalation_is_refused_beside_its_field_and_nothing_is_written(
    app, desk, changes, field_id, message
):
    tenant = desk.tenant
    with travel(WEDNESDAY_10AM):
        ticket = received(app, tenant)
        agent = staff_client(app, tenant, desk.agent)
        before = record_state(app, tenant)
        response = record_escalation(agent, tenant, ticket.number, **changes)
        assert 400 <= response.status_code < 500
        assert message in field_feedback(response.text, field_id)
        assert record_state(app, tenant) == before


def test_what_the_body_concluded_is_recorded_once_and_counted_in_the_return(
    app, runner, desk, make_tenant, make_user
):
    tenant = desk.tenant
    with travel(WEDNESDAY_10AM):
        escalated = received(app, tenant)
        agent = staff_client(app, tenant, desk.agent)
        assert record_escalation(agent, tenant, escalated.number).status_code == 302
        (event,) = events(app, tenant, "refund.escalation_recorded")
        escalation_id = event.data["escalation_id"]
        action = f"/tickets/{escalated.number}/escalations/{escalation_id}/outcome"
        page = agent.get(refund_url(tenant, escalated.number)).text
        assert "Pending: the body has not concluded." in text_of(page)
        token = CSRF_ANY.search(page).group(1)
        url = f"/t/{tenant.slug}{action}"
        before = record_state(app, tenant)
        early = agent.post(
            url, data={"csrf_token": token, "outcome": "for_customer", "decided_on": "2026-09-14"}
        )
        assert early.status_code == 422 and "before the referral was received" in early.text
        unknown = agent.post(url, data={"csrf_token": token, "outcome": "we_won", "decided_on": "2026-09-16"})
        assert unknown.status_code == 400
        assert record_state(app, tenant) == before
        done = agent.post(
            url,
            data={
                "csrf_token": token,
                "outcome": "for_customer",
                "decided_on": "2026-09-16",
                "note": "调解书第 7 号",
            },
            follow_redirects=True,
        )
        assert "The body's conclusion is recorded." in text_of(done.text)
        assert "Upheld for the customer" in text_of(done.text) and "调解书第 7 号" in done.text
        again = agent.post(url, data={"csrf_token": token, "outcome": "settled", "decided_on": "2026-09-16"})
        assert again.status_code == 409
        other = make_tenant()
        outsider = staff_client(app, other, make_user(other, "agent"))
        their_token = CSRF_ANY.search(outsider.get(f"/t/{other.slug}/account").text).group(1)
        theirs = outsider.post(
            f"/t/{other.slug}{action}",
            data={"csrf_token": their_token, "outcome": "settled", "decided_on": "2026-09-16"},
        )
        assert theirs.status_code == 404
    (outcome_event,) = events(app, tenant, "refund.escalation_outcome")
    assert (
        outcome_event.data["outcome"] == "for_customer" and outcome_event.data["decided_on"] == "2026-09-16"
    )
    with travel(shanghai(2026, 10, 2, 10)):
        result = runner.invoke(
            args=[
                "reports",
                "complaints",
                "--tenant",
                tenant.slug,
                "--from",
                "2026-09-01",
                "--to",
                "2026-09-30",
            ]
        )
        verified = runner.invoke(
            args=["reports", "verify", "--tenant", tenant.slug, "--from", "2026-09-01", "--to", "2026-09-30"]
        )
    assert "Escalated to: Telecom regulator · Upheld for the customer,,1," in result.output, result.output
    assert verified.exit_code == 0, verified.output
    assert "escalations_telecom_regulator_for_customer" in verified.output


def new_ticket(client, tenant, **changes: str):
    fields = {
        "name": "赵敏",
        "phone": "13700137000",
        "kind": "refund",
        "channel": "regulator_referral",
        "priority": "high",
        "description": "工信部转来的申诉：要求退还预存话费。",
        "referral_body": "platform_12315",
        "referral_case_number": "12315-2026-88",
        "referral_received_on": "2026-09-16",
        "referral_deadline_on": "2026-09-23",
        **changes,
    }
    return send_page_form(client, f"/t/{tenant.slug}/tickets/new", fields)


def test_a_ticket_opened_from_a_referral_carries_its_case_and_deadline(app, desk):
    tenant = desk.tenant
    with travel(WEDNESDAY_10AM):
        agent = staff_client(app, tenant, desk.agent)
        response = new_ticket(agent, tenant)
        assert response.status_code == 302
        number = int(response.headers["Location"].rsplit("/", 1)[1])
        page = page_text(agent, refund_url(tenant, number))
        deadline = clock_line(agent, tenant, number, "Outside body's deadline")
    assert "Escalated outside" in page and "12315 platform · case 12315-2026-88" in page
    assert "Due end of Wed, Sep 23" in deadline
    (created,) = events(app, tenant, "ticket.created")
    (escalation,) = events(app, tenant, "refund.escalation_recorded")
    assert created.data["channel"] == "regulator_referral"
    assert escalation.subject_id == created.subject_id


@pytest.mark.parametrize(
    "changes, field_id, message",
    [
        ({"referral_case_number": ""}, "referral_case_number", "This field is required."),
        ({"referral_deadline_on": "2026-09-01"}, "referral_deadline_on", "The deadline cannot be before"),
        ({"referral_body": ""}, "referral_body", "Choose the body the customer went to."),
    ],
    ids=["no-case-number", "deadline-before-received", "no-body"],
)
def test_a_referral_with_a_bad_field_creates_nothing(app, desk, changes, field_id, message):
    tenant = desk.tenant
    with travel(WEDNESDAY_10AM):
        agent = staff_client(app, tenant, desk.agent)
        before = record_state(app, tenant)
        response = new_ticket(agent, tenant, **changes)
        assert 400 <= response.status_code < 500
        assert message in field_feedback(response.text, field_id)
        assert record_state(app, tenant) == before


# --- 8. tenants kept apart -------------------------------------------------------------------


def test_another_tenants_manager_can_neither_see_nor_act_on_a_refund(app, desk, make_tenant, make_user):
    a = desk.tenant
    b = make_tenant()
    b_manager = make_user(b, "manager")
    with travel(WEDNESDAY_10AM):
        published(app, b)
        paid = received(app, a)
        pending = received(app, a, paid="1200.00")
        mine = received(app, b)
        assert (paid.number, mine.number) == (1001, 1001)  # the same number in each tenant
        agent = staff_client(app, a, desk.agent)
        assert decide(agent, a, paid.number, **PARTIAL).status_code == 302
        assert pay(agent, a, paid.number, "75.50").status_code == 302
        assert decide(agent, a, pending.number, **FULL, amount="1200.00").status_code == 302
        before = record_state(app, a)

        outsider = staff_client(app, b, b_manager)
        for number in (paid.number, pending.number):
            response = outsider.get(refund_url(a, number))
            assert response.status_code in (302, 404)
            assert "Clause 2, unused balance" not in response.text
        token = CSRF_ANY.search(outsider.get(f"/t/{b.slug}/tickets").text).group(1)
        attempts = {
            refund_url(a, pending.number, "/approve"): {"approval-csrf_token": token},
            refund_url(a, pending.number, "/reject"): {"approval-csrf_token": token, "approval-note": "No."},
            refund_url(a, paid.number): {
                "decision-csrf_token": token,
                **{f"decision-{name}": value for name, value in PARTIAL.items()},
                "action": "propose",
            },
            f"/t/{a.slug}/tickets/{paid.number}/payouts": {
                "payout-csrf_token": token,
                "payout-amount": "1.00",
                "payout-method": "cash",
                "payout-reference": "X",
                "payout-paid_at": "2026-09-16T09:00",
            },
            f"/t/{a.slug}/tickets/{paid.number}/escalations": {
                "escalation-csrf_token": token,
                "escalation-body": "court",
                "escalation-case_number": "X",
                "escalation-received_on": "2026-09-15",
                "escalation-deadline_on": "2026-09-30",
            },
        }
        for url, data in attempts.items():
            response = outsider.post(url, data=data)
            # Signed in to B only: A's pages send them to A's sign-in.
            assert response.status_code == 404 or response.headers["Location"].startswith(
                f"/t/{a.slug}/login?"
            ), url
        assert record_state(app, a) == before

        # B's own ticket 1001 shows none of A's decision or payouts.
        own = page_text(outsider, refund_url(b, mine.number))
        b_queue = page_text(outsider, f"/t/{b.slug}/tickets?view=pending_approval")
    assert "Approved CN¥0.00 · paid CN¥0.00 · owed CN¥0.00" in own
    assert "Clause 2, unused balance" not in own and "ALI-75.50" not in own
    assert pending.reference not in b_queue
    with acting_for(app, b) as session:
        assert session.scalar(select(func.count()).select_from(RefundDecision)) == 0
        assert session.scalar(select(func.count()).select_from(Payout)) == 0


# --- 9. the whole path, and the audit chain over it -------------------------------------------


def test_the_audit_chain_verifies_after_decision_approval_payout_and_escalation(app, runner, desk):
    tenant = desk.tenant
    with travel(WEDNESDAY_10AM):
        ticket = received(app, tenant, paid="1200.00")
        agent = staff_client(app, tenant, desk.agent)
        assert record_escalation(agent, tenant, ticket.number).status_code == 302
        assert decide(agent, tenant, ticket.number, **FULL, amount="1200.00").status_code == 302
        approver = staff_client(app, tenant, desk.approver)
        assert second_person(approver, tenant, ticket.number, "approve").status_code == 302
        assert (
            pay(agent, tenant, ticket.number, "1200.00", paid_at="2026-09-16T10:00", receipt=PNG).status_code
            == 302
        )
    actions = [event.action for event in events_all(app, tenant)]
    for action in (
        "refund.escalation_recorded",
        "refund.decision_proposed",
        "refund.decision_approved",
        "refund.final_response_sent",
        "refund.payout_recorded",
    ):
        assert actions.count(action) == 1, action
    assert_audit_chain_verifies(runner, tenant)


def events_all(app, tenant) -> list[AuditEvent]:
    with acting_for(app, tenant) as session:
        return list(session.scalars(select(AuditEvent).order_by(AuditEvent.seq)))
