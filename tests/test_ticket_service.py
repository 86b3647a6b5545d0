"""Ticket operations at the service level: numbering, customers, status rules, audit."""

import threading
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine
from sqlalchemy import select

from crm.audit.models import AuditEvent
from crm.audit.service import verify_chain
from crm.auth.models import User
from crm.errors import Conflict, DomainError
from crm.tickets import service as tickets
from crm.tickets.models import Status, SubmissionUse, ThreadEntry
from tests.conftest import acting_for, requires_postgres

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n"


def refund_request(**overrides) -> tickets.RefundRequest:
    customer = overrides.pop("customer", {})
    return tickets.RefundRequest(
        customer=tickets.CustomerDetails(
            **{
                "name": "王小明",
                "phone": "13800138000",
                "email": "xm@example.test",
                "locale": "zh_CN",
                **customer,
            }
        ),
        reason=overrides.pop("reason", "unused_balance"),
        description=overrides.pop("description", "我的号码已停用，请退还剩余余额。"),
        **overrides,
    )


@pytest.fixture
def desk(app, make_tenant, make_user):
    tenant = make_tenant()
    agent = make_user(tenant, "agent")
    return tenant, agent


def test_submissions_get_consecutive_numbers_and_one_customer_per_person(app, desk):
    tenant, _agent = desk
    with acting_for(app, tenant) as session:
        first = tickets.submit_refund_request(refund_request(), nonce="n1", ip="198.51.100.7")
        second = tickets.submit_refund_request(
            refund_request(customer={"phone": "+86 138 0013 8000", "email": ""}), nonce="n2", ip=None
        )
        session.commit()
        assert (first.ticket.reference, second.ticket.reference) == ("RF-1001", "RF-1002")
        assert first.ticket.customer_id == second.ticket.customer_id
        assert first.ticket.customer.phone == "+8613800138000"
        assert (
            first.tracking_token
            and tickets.ticket_by_tracking_token(first.tracking_token).id == first.ticket.id
        )


def test_the_same_submission_token_makes_one_ticket(app, desk):
    tenant, _agent = desk
    with acting_for(app, tenant) as session:
        first = tickets.submit_refund_request(refund_request(), nonce="same", ip=None)
        session.commit()
        with pytest.raises(tickets.RepeatedSubmission):
            tickets.submit_refund_request(refund_request(), nonce="same", ip=None)
        session.rollback()
        again = tickets.repeated_submission("same")
        session.commit()
        assert again.repeated and again.ticket.id == first.ticket.id and again.tracking_token is None
        # Nothing of the repeat was kept: no second ticket, and the next number is the next.
        assert tickets.ticket_by_number(1002) is None
        assert session.scalar(select(SubmissionUse.attempts).where(SubmissionUse.nonce == "same")) == 2
        assert tickets.submit_refund_request(refund_request(), nonce="other", ip=None).ticket.number == 1002


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"customer": {"name": ""}}, "name"),
        ({"customer": {"name": "x" * 201}}, "name"),
        ({"customer": {"phone": "12"}}, "phone"),
        ({"customer": {"email": "not-an-email"}}, "email"),
        ({"description": ""}, "description"),
        ({"description": "x" * 20_001}, "description"),
        ({"reason": "because"}, "reason"),
        ({"amount": Decimal("-1")}, "amount"),
        ({"amount": "abc"}, "amount"),
        ({"amount": Decimal("1.005")}, "amount"),
        ({"uploads": [tickets.Upload(f"{n}.pdf", PDF) for n in range(6)]}, "attachments"),
        ({"uploads": [tickets.Upload("big.pdf", PDF + b"0" * (10 * 2**20))]}, "attachments"),
        ({"uploads": [tickets.Upload("evil.pdf", b"MZ\x90\x00\x03" + b"\x00" * 200)]}, "attachments"),
    ],
)
def test_bad_requests_are_refused_and_create_nothing(app, desk, overrides, field):
    tenant, _agent = desk
    with acting_for(app, tenant) as session:
        events_before = verify_chain().count
        with pytest.raises(DomainError) as refused:
            tickets.submit_refund_request(refund_request(**overrides), nonce="bad", ip=None)
        assert refused.value.field == field
        session.rollback()
        assert verify_chain().count == events_before
        assert tickets.ticket_by_number(1001) is None


def test_amount_is_kept_in_minor_units():
    assert tickets.to_minor_units(Decimal("199.00"), "CNY") == 19900
    assert tickets.to_minor_units("1000", "JPY") == 1000
    with pytest.raises(DomainError):
        tickets.to_minor_units("1.5", "JPY")


def test_the_conversation_follows_the_status_rules_and_is_audited(app, desk):
    tenant, agent = desk
    with acting_for(app, tenant) as session:
        ticket = tickets.submit_refund_request(
            refund_request(uploads=[tickets.Upload("invoice.pdf", PDF)]), nonce="flow", ip=None
        ).ticket
        user = session.get(User, agent.id)
        tickets.add_note(ticket, "Check the billing system.", user=user, ip=None)
        tickets.request_information(ticket, "请提供充值记录截图。", user=user, ip=None)
        assert ticket.status == Status.AWAITING_CUSTOMER
        tickets.customer_reply(
            ticket, "截图见附件。", ip=None, uploads=[tickets.Upload("shot.txt", b"balance 100")]
        )
        assert ticket.status == Status.OPEN
        tickets.resolve(ticket, "已退还 100 元。", user=user, ip=None, no_refund_reason="no_refund_requested")
        with pytest.raises(Conflict):
            tickets.withdraw_by_customer(ticket, ip=None)
        tickets.not_satisfied(ticket, "金额不对。", ip=None)
        assert ticket.status == Status.OPEN and ticket.needs_manager
        session.commit()
        public = [entry.kind for entry in tickets.thread(ticket, public_only=True)]
        assert "internal_note" not in public and "outbound_email" not in public
        kinds = session.scalars(select(ThreadEntry.kind).where(ThreadEntry.ticket_id == ticket.id)).all()
        assert "internal_note" in kinds and kinds.count("outbound_email") == 3  # receipt, request, resolution
        actions = session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)).all()
        for action in [
            "ticket.created",
            "attachment.added",
            "ticket.note_added",
            "ticket.replied",
            "ticket.status_changed",
            "ticket.message_received",
            "email.queued",
            "ticket.escalated_to_manager",
        ]:
            assert action in actions
        assert verify_chain().ok


@requires_postgres
def test_two_simultaneous_submits_of_one_form_make_one_ticket(app, desk):
    tenant, _agent = desk
    start = threading.Barrier(2)
    references: list[str] = []

    def submit_once() -> None:
        with acting_for(app, tenant) as session:
            start.wait()
            try:
                submission = tickets.submit_refund_request(refund_request(), nonce="clicked-twice", ip=None)
            except tickets.RepeatedSubmission:
                session.rollback()
                submission = tickets.repeated_submission("clicked-twice")
            references.append(submission.ticket.reference)
            session.commit()

    threads = [threading.Thread(target=submit_once) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert references == ["RF-1001", "RF-1001"]
    with acting_for(app, tenant):
        assert tickets.ticket_by_number(1002) is None


def test_last_activity_is_the_receipt_until_something_happens_later(app, desk):
    """A new ticket's own first entries leave "last activity" at its receipt (no second
    write for it); anything in a later transaction moves it."""
    tenant, agent = desk
    with (
        time_machine.travel(datetime(2026, 9, 16, 2, 0, tzinfo=UTC), tick=False),
        acting_for(app, tenant) as session,
    ):
        ticket = tickets.submit_refund_request(refund_request(), nonce="activity", ip=None).ticket
        session.commit()
        assert ticket.updated_at == ticket.created_at == datetime(2026, 9, 16, 2, 0, tzinfo=UTC)
    with (
        time_machine.travel(datetime(2026, 9, 16, 3, 0, tzinfo=UTC), tick=False),
        acting_for(app, tenant) as session,
    ):
        ticket = tickets.ticket_by_number(ticket.number)
        user = session.get(User, agent.id)
        tickets.add_note(ticket, "Checked the bill.", user=user, ip=None)
        session.commit()
        assert ticket.updated_at == datetime(2026, 9, 16, 3, 0, tzinfo=UTC)
