"""Final answers cannot slip out (issue 11, section 3), as a new user would try it:

- a refund ticket is resolved by its refund decision, or on the stated ground that no
  refund was requested; free text alone is refused;
- after the customer says "not satisfied", the next answer is a manager's who took no part
  in the previous one;
- whatever is sent to the customer (a final response from Resolve, a decision, an approval)
  is shown first exactly as it will arrive, and is sent only as shown;
- merging and closing are confirmed.

Each refusal is checked where a person meets it (the page, its status and message, what
they typed kept) and for what it must leave alone (nothing written, nothing sent)."""

import re

import pytest
from sqlalchemy import select

from crm.audit.models import AuditEvent
from crm.auth.models import User
from crm.errors import Conflict
from crm.notify.models import OutboxMessage
from crm.tickets import service as tickets
from tests import test_refunds
from tests.conftest import acting_for
from tests.test_policies import _PageReader
from tests.test_refunds import (
    DENIED,
    FULL,
    PARTIAL,
    WEDNESDAY_10AM,
    confirm_preview,
    decide,
    events,
    is_preview,
    page_text,
    post_by_hand,
    received,
    record_state,
    refund_url,
    resolve_on_page,
    second_person,
    staff_client,
    status_of,
    text_of,
)
from tests.test_sla import travel
from tests.test_sla_pages import field_feedback, form_fields, page_form, send_page_form

desk = test_refunds.desk  # a Shanghai provider under the example policy: an agent, two managers

NO_DECISION = (
    "A refund request is resolved by its refund decision: record it on the refund page. "
    "If the customer asked for no refund, tick “No refund was requested”."
)
REVIEW_BY_OTHER = (
    "The customer asked for a manager's review: it must come from a manager who took no part in the "
    "previous answer."
)
REVIEW_BY_MANAGER = "The customer asked for a manager's review: a manager must give the next answer."
CHANGED = "What the customer would receive has changed since the preview: check it again."


def ticket_url(tenant, number: int, tail: str = "") -> str:
    return f"/t/{tenant.slug}/tickets/{number}{tail}"


def resolve_preview(client, tenant, number: int, body: str, **changes):
    """The ticket page's Resolve tab: type the answer, press "Preview the final response"."""
    fields = {"resolve-body": body, "step": "preview", **changes}
    return send_page_form(client, ticket_url(tenant, number), fields, action=f"/tickets/{number}/resolve")


def not_satisfied(app, tenant, number: int) -> None:
    """The customer presses "not satisfied" on the tracking page."""
    with acting_for(app, tenant) as session:
        tickets.not_satisfied(tickets.ticket_by_number(number), "金额不对。", ip=None)
        session.commit()


def outbox(app, tenant) -> list[str]:
    with acting_for(app, tenant) as session:
        return [message.body for message in session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))]


# --- a refund ticket resolves through a decision ---------------------------------------------


def test_a_refund_ticket_is_not_resolved_with_free_text_and_no_decision(app, desk):
    tenant = desk.tenant
    with travel(WEDNESDAY_10AM):
        ticket = received(app, tenant)
        agent = staff_client(app, tenant, desk.agent)
        before = record_state(app, tenant)
        refused = resolve_preview(agent, tenant, ticket.number, "已退还 199 元。")
        assert refused.status_code == 409
        assert NO_DECISION in text_of(refused.text)
        # The form comes back as typed, in its tab, with the way out offered beside it.
        assert (
            form_fields(refused.text, f"/tickets/{ticket.number}/resolve")["resolve-body"]
            == "已退还 199 元。"
        )
        assert "No refund was requested: resolve without a refund decision" in text_of(refused.text)
        # Sent without the preview step, by hand: refused all the same.
        by_hand = post_by_hand(
            agent,
            ticket_url(tenant, ticket.number),
            ticket_url(tenant, ticket.number, "/resolve"),
            {"resolve-body": "已退还 199 元。", "resolve-previewed": "0" * 64, "step": "send"},
            form="resolve",
        )
        assert by_hand.status_code == 409 and NO_DECISION in text_of(by_hand.text)
        assert record_state(app, tenant) == before
    assert status_of(app, tenant, ticket.number) == "new"


def test_the_service_refuses_to_resolve_a_refund_without_grounds(app, desk):
    tenant = desk.tenant
    with travel(WEDNESDAY_10AM):
        refund = received(app, tenant)
        with acting_for(app, tenant) as session:
            agent = session.get(User, desk.agent.id)
            with pytest.raises(Conflict, match="resolved by its refund decision"):
                tickets.resolve(tickets.ticket_by_number(refund.number), "Refunded.", user=agent, ip=None)
            session.rollback()
            complaint = tickets.open_ticket(
                customer=tickets.CustomerDetails(name="周杰", phone="13900139000", locale="zh_CN"),
                kind="complaint",
                channel="phone",
                priority="normal",
                description="营销外呼太多。",
                user=agent,
                ip=None,
            )
            # A complaint is answered with words: no refund decision is asked of it.
            tickets.resolve(complaint, "已将您的号码加入免打扰名单。", user=agent, ip=None)
            assert complaint.status == "resolved"
            session.commit()


def test_no_refund_requested_is_a_stated_ground_previewed_sent_and_audited(app, client, desk):
    tenant = desk.tenant
    answer = "您咨询的是退费流程，无需退款。流程见官网。"
    with travel(WEDNESDAY_10AM):
        ticket = received(app, tenant)
        agent = staff_client(app, tenant, desk.agent)
        before = record_state(app, tenant)
        preview = resolve_preview(
            agent, tenant, ticket.number, answer, **{"resolve-no_refund_requested": "y"}
        )
        assert is_preview(preview)
        shown = text_of(preview.text)
        # Exactly what the customer gets: the reply, and the email in their language.
        assert f"On the customer's tracking page {answer}" in shown
        assert "xm@example.test" in shown
        assert f"您的申请 {ticket.reference} 已解决" in shown
        assert "Send final response to the customer" in shown and "Back to edit" in shown
        assert record_state(app, tenant) == before  # nothing written, nothing sent

        back = confirm_preview(agent, preview, "edit", f"/tickets/{ticket.number}/resolve", "step")
        assert back.status_code == 200
        kept = form_fields(back.text, f"/tickets/{ticket.number}/resolve")
        assert kept["resolve-body"] == answer and kept["resolve-no_refund_requested"] == "y"

        sent = confirm_preview(agent, preview, "send", f"/tickets/{ticket.number}/resolve", "step")
        assert sent.status_code == 302
        tracking = page_text(client, ticket.tracking_path)
    assert answer in tracking
    assert status_of(app, tenant, ticket.number) == "resolved"
    assert any(answer in body for body in outbox(app, tenant))
    (event,) = events(app, tenant, "ticket.resolved")
    assert event.data["grounds"] == "no_refund_requested"
    assert event.actor_id == str(desk.agent.id)


def test_a_final_response_is_sent_only_as_previewed(app, desk):
    """Sent straight to "send" with no preview, it is previewed instead; with a preview of
    other words (or a changed answer), it is refused. Nothing goes out either way."""
    tenant = desk.tenant
    with travel(WEDNESDAY_10AM):
        ticket = received(app, tenant)
        agent = staff_client(app, tenant, desk.agent)
        before = record_state(app, tenant)
        unseen = resolve_preview(
            agent,
            tenant,
            ticket.number,
            "No refund needed.",
            **{"resolve-no_refund_requested": "y", "step": "send"},
        )
        assert is_preview(unseen)
        target, fields = page_form(unseen.text, f"/tickets/{ticket.number}/resolve")
        fields["step"] = "send"
        fields["resolve-body"] = "Something else than was shown."
        changed = agent.post(target, data=fields.to_dict(flat=False))
        assert changed.status_code == 409
        assert CHANGED in text_of(changed.text)
        assert record_state(app, tenant) == before


def test_the_resolve_button_says_it_previews_and_the_preview_says_it_sends(app, desk):
    tenant = desk.tenant
    with travel(WEDNESDAY_10AM):
        ticket = received(app, tenant)
        agent = staff_client(app, tenant, desk.agent)
        page = text_of(agent.get(ticket_url(tenant, ticket.number)).text)
        assert "Preview the final response" in page and "Resolve and send" not in page
        refund_page = text_of(agent.get(refund_url(tenant, ticket.number)).text)
        assert "Preview the decision" in refund_page and "Record the decision" not in refund_page


# --- decisions and approvals are previewed ---------------------------------------------------


def test_a_decision_is_previewed_with_the_final_response_before_anything_is_written(app, desk):
    tenant = desk.tenant
    with travel(WEDNESDAY_10AM):
        ticket = received(app, tenant)
        agent = staff_client(app, tenant, desk.agent)
        before = record_state(app, tenant)
        preview = decide(agent, tenant, ticket.number, action="preview", **PARTIAL)
        assert is_preview(preview)
        shown = text_of(preview.text)
        assert "处理结果：部分批准" in shown and "退款金额：¥75.50" in shown
        assert "Send final response to the customer" in shown
        assert record_state(app, tenant) == before

        # "propose" sent without a preview (an old form, a script): previewed, not recorded.
        unseen = send_page_form(
            agent,
            refund_url(tenant, ticket.number),
            {**{f"decision-{k}": v for k, v in PARTIAL.items()}, "action": "propose"},
            action=f"/tickets/{ticket.number}/refund",
        )
        assert is_preview(unseen)
        assert record_state(app, tenant) == before

        # A preview of another amount cannot record this one.
        target, fields = page_form(preview.text, f"/tickets/{ticket.number}/refund")
        fields["action"] = "propose"
        fields["decision-clause"] = "Clause 9, something else"
        changed = agent.post(target, data=fields.to_dict(flat=False))
        assert changed.status_code == 409 and CHANGED in text_of(changed.text)
        assert record_state(app, tenant) == before

        sent = confirm_preview(agent, preview, "propose", f"/tickets/{ticket.number}/refund")
        assert sent.status_code == 302
    assert status_of(app, tenant, ticket.number) == "resolved"
    (final,) = events(app, tenant, "refund.final_response_sent")
    assert final.data["decision_id"] == events(app, tenant, "refund.decision_proposed")[0].data["decision_id"]


def test_a_denial_is_previewed_too(app, desk):
    tenant = desk.tenant
    with travel(WEDNESDAY_10AM):
        ticket = received(app, tenant)
        agent = staff_client(app, tenant, desk.agent)
        preview = decide(agent, tenant, ticket.number, action="preview", **DENIED)
        assert is_preview(preview)
        assert "处理结果：拒绝" in text_of(preview.text)
        assert events(app, tenant, "refund.decision_proposed") == []


def test_an_approval_shows_the_final_response_and_the_proposer_is_refused_at_once(app, desk):
    tenant = desk.tenant
    with travel(WEDNESDAY_10AM):
        big = received(app, tenant, paid="1200.00")
        manager = staff_client(app, tenant, desk.manager)
        waits = decide(manager, tenant, big.number, action="preview", **FULL, amount="1200.00")
        assert "This decision waits for a manager's approval: nothing is sent to the customer yet." in (
            text_of(waits.text)
        )
        assert "It refunds more than the amount above which a manager approves." in text_of(waits.text)
        assert confirm_preview(manager, waits, "propose", f"/tickets/{big.number}/refund").status_code == 302

        approver = staff_client(app, tenant, desk.approver)
        before = record_state(app, tenant)
        own = post_by_hand(
            manager,
            refund_url(tenant, big.number),
            refund_url(tenant, big.number, "/approve"),
            {"approval-note": ""},
            form="approval",
        )
        assert own.status_code == 409
        assert "A decision needs a second person: you proposed this one." in text_of(own.text)

        page = approver.get(refund_url(tenant, big.number)).text
        _action, fields = page_form(page, "")
        fields["approval-note"] = "Checked the contract."
        preview = approver.post(refund_url(tenant, big.number, "/approve"), data=fields)
        assert is_preview(preview)
        shown = text_of(preview.text)
        assert (
            "处理结果：全额批准" in shown and "Approve and send the final response to the customer" in shown
        )
        assert record_state(app, tenant) == before

        back = confirm_preview(approver, preview, "edit", "/refund/approve")
        assert back.status_code == 200
        assert form_fields(back.text, "")["approval-note"] == "Checked the contract."

        approved = confirm_preview(approver, preview, "send", "/refund/approve")
        assert approved.status_code == 302
    assert status_of(app, tenant, big.number) == "resolved"
    assert len(events(app, tenant, "refund.final_response_sent")) == 1


# --- after "not satisfied", a manager who took no part ---------------------------------------


def test_after_not_satisfied_the_agents_new_decision_waits_for_a_manager(app, desk):
    tenant = desk.tenant
    with travel(WEDNESDAY_10AM):
        ticket = received(app, tenant)
        agent = staff_client(app, tenant, desk.agent)
        assert decide(agent, tenant, ticket.number, **PARTIAL).status_code == 302
        not_satisfied(app, tenant, ticket.number)
        page = page_text(agent, refund_url(tenant, ticket.number))
        assert "your decision will wait for a manager who took no part in the previous answer" in page
        preview = decide(agent, tenant, ticket.number, action="preview", **FULL, amount="199.00")
        assert (
            "The customer said they are not satisfied: a manager who took no part in the previous answer "
            "must decide." in text_of(preview.text)
        )
        assert "Send final response to the customer" not in text_of(preview.text)
        assert (
            confirm_preview(agent, preview, "propose", f"/tickets/{ticket.number}/refund").status_code == 302
        )
    assert status_of(app, tenant, ticket.number) == "pending_approval"
    assert len(outbox_final(app, tenant)) == 1  # the first answer only
    second = events(app, tenant, "refund.decision_proposed")[-1]
    assert second.data["needs_approval"] is True
    assert second.data["approval_because"] == ["manager_review"]


def outbox_final(app, tenant) -> list[str]:
    return [body for body in outbox(app, tenant) if "我们已对您的申请" in body]


def test_the_manager_who_decided_before_can_neither_decide_alone_nor_approve_the_review(app, desk):
    tenant = desk.tenant
    with travel(WEDNESDAY_10AM):
        ticket = received(app, tenant)
        manager = staff_client(app, tenant, desk.manager)
        assert decide(manager, tenant, ticket.number, **PARTIAL).status_code == 302  # final at once
        not_satisfied(app, tenant, ticket.number)

        # The same manager decides again: it waits, for another manager.
        assert decide(manager, tenant, ticket.number, **FULL, amount="199.00").status_code == 302
        assert status_of(app, tenant, ticket.number) == "pending_approval"
        page = page_text(manager, refund_url(tenant, ticket.number))
        assert "Approve: preview the final response" not in page

        # Only a manager who took no part is offered the approval.
        before = record_state(app, tenant)
        reviewer = staff_client(app, tenant, desk.approver)
        assert "Approve: preview the final response" in page_text(reviewer, refund_url(tenant, ticket.number))
        assert second_person(reviewer, tenant, ticket.number, "approve").status_code == 302
        assert record_state(app, tenant) != before
    assert status_of(app, tenant, ticket.number) == "resolved"
    approved = events(app, tenant, "refund.decision_approved")[-1]
    assert approved.actor_id == str(desk.approver.id)


def test_a_previous_decider_is_refused_as_the_approver_of_the_review(app, desk):
    tenant = desk.tenant
    with travel(WEDNESDAY_10AM):
        ticket = received(app, tenant)
        manager = staff_client(app, tenant, desk.manager)
        assert decide(manager, tenant, ticket.number, **PARTIAL).status_code == 302
        not_satisfied(app, tenant, ticket.number)
        agent = staff_client(app, tenant, desk.agent)
        assert decide(agent, tenant, ticket.number, **FULL, amount="199.00").status_code == 302
        assert status_of(app, tenant, ticket.number) == "pending_approval"
        before = record_state(app, tenant)
        refused = post_by_hand(
            manager,
            refund_url(tenant, ticket.number),
            refund_url(tenant, ticket.number, "/approve"),
            {"approval-note": ""},
            form="approval",
        )
        assert refused.status_code == 409 and REVIEW_BY_OTHER in text_of(refused.text)
        assert record_state(app, tenant) == before


def test_a_manager_who_took_no_part_decides_the_review_at_once(app, desk):
    tenant = desk.tenant
    with travel(WEDNESDAY_10AM):
        ticket = received(app, tenant)
        agent = staff_client(app, tenant, desk.agent)
        assert decide(agent, tenant, ticket.number, **PARTIAL).status_code == 302
        not_satisfied(app, tenant, ticket.number)
        reviewer = staff_client(app, tenant, desk.approver)
        assert decide(reviewer, tenant, ticket.number, **FULL, amount="199.00").status_code == 302
    assert status_of(app, tenant, ticket.number) == "resolved"
    with acting_for(app, tenant):
        assert not tickets.ticket_by_number(ticket.number).needs_manager


def test_after_not_satisfied_resolve_needs_a_manager_who_took_no_part(app, desk):
    """The decision stands, and Resolve would say so again: only as the manager's review."""
    tenant = desk.tenant
    with travel(WEDNESDAY_10AM):
        ticket = received(app, tenant)
        manager = staff_client(app, tenant, desk.manager)
        assert decide(manager, tenant, ticket.number, **PARTIAL).status_code == 302
        not_satisfied(app, tenant, ticket.number)
        answer = "经复核，维持原决定。"
        agent, reviewer = staff_client(app, tenant, desk.agent), staff_client(app, tenant, desk.approver)
        before = record_state(app, tenant)
        for client, message in ((agent, REVIEW_BY_MANAGER), (manager, REVIEW_BY_OTHER)):
            refused = resolve_preview(client, tenant, ticket.number, answer)
            assert refused.status_code == 409 and message in text_of(refused.text), message
        assert record_state(app, tenant) == before
        assert resolve_on_page(reviewer, tenant, ticket.number, answer).status_code == 302
    assert status_of(app, tenant, ticket.number) == "resolved"
    (event,) = events(app, tenant, "ticket.resolved")
    assert event.data["grounds"] == "decision_stands" and event.data["review"] is True


# --- merge and close are confirmed -----------------------------------------------------------


def test_merge_needs_its_confirmation(app, desk):
    tenant = desk.tenant
    with travel(WEDNESDAY_10AM):
        kept, duplicate = received(app, tenant), received(app, tenant)
        agent = staff_client(app, tenant, desk.agent)
        url = ticket_url(tenant, duplicate.number)
        before = record_state(app, tenant)
        unconfirmed = send_page_form(
            agent, url, {"merge-target": kept.reference}, action=f"/tickets/{duplicate.number}/merge"
        )
        assert unconfirmed.status_code == 400
        assert "Tick the box to confirm the merge." in field_feedback(unconfirmed.text, "merge-confirm")
        assert (
            form_fields(unconfirmed.text, f"/tickets/{duplicate.number}/merge")["merge-target"]
            == kept.reference
        )
        assert record_state(app, tenant) == before
        merged = send_page_form(
            agent,
            url,
            {"merge-target": kept.reference, "merge-confirm": "y"},
            action=f"/tickets/{duplicate.number}/merge",
        )
        assert merged.status_code == 302
    assert status_of(app, tenant, duplicate.number) == "closed"


def test_close_needs_its_confirmation(app, desk):
    tenant = desk.tenant
    with travel(WEDNESDAY_10AM):
        ticket = received(app, tenant)
        agent = staff_client(app, tenant, desk.agent)
        assert decide(agent, tenant, ticket.number, **DENIED).status_code == 302
        url = ticket_url(tenant, ticket.number)
        before = record_state(app, tenant)
        unconfirmed = send_page_form(agent, url, {}, action=f"/tickets/{ticket.number}/close")
        assert unconfirmed.status_code == 400
        assert "Tick the box to confirm closing the ticket." in field_feedback(
            unconfirmed.text, "close-confirm"
        )
        assert record_state(app, tenant) == before
        closed = send_page_form(agent, url, {"close-confirm": "y"}, action=f"/tickets/{ticket.number}/close")
        assert closed.status_code == 302
    assert status_of(app, tenant, ticket.number) == "closed"


# --- no inline script on these pages ---------------------------------------------------------


def assert_no_inline_script(html: str) -> None:
    reader = _PageReader()
    reader.feed(html)
    assert not [text for text in reader.scripts if text.strip()], "an inline <script>"
    handlers = [
        (tag, name)
        for tag, attributes in reader.elements
        for name in attributes
        if re.fullmatch(r"on\w+", name)
    ]
    assert handlers == []


def test_the_preview_and_confirmation_pages_carry_no_inline_script(app, desk):
    tenant = desk.tenant
    with travel(WEDNESDAY_10AM):
        small, big, other = (
            received(app, tenant),
            received(app, tenant, paid="1200.00"),
            received(app, tenant),
        )
        agent = staff_client(app, tenant, desk.agent)
        pages = [
            decide(agent, tenant, small.number, action="preview", **PARTIAL),
            resolve_preview(
                agent, tenant, other.number, "No refund needed.", **{"resolve-no_refund_requested": "y"}
            ),
        ]
        assert decide(agent, tenant, big.number, **FULL, amount="1200.00").status_code == 302
        approver = staff_client(app, tenant, desk.approver)
        page = approver.get(refund_url(tenant, big.number)).text
        _action, fields = page_form(page, "")
        pages.append(approver.post(refund_url(tenant, big.number, "/approve"), data=fields))
        pages.append(agent.get(ticket_url(tenant, small.number)))
    for response in pages:
        assert response.status_code == 200
        assert_no_inline_script(response.text)
    with acting_for(app, tenant) as session:
        assert session.scalars(select(AuditEvent).where(AuditEvent.action == "ticket.resolved")).all() == []


def test_a_complaint_answered_again_after_not_satisfied_needs_another_manager(app, desk):
    """The promise holds for every kind: the manager who resolved it cannot answer the review."""
    tenant = desk.tenant
    with travel(WEDNESDAY_10AM), acting_for(app, tenant) as session:
        agent, manager, reviewer = (
            session.get(User, user.id) for user in (desk.agent, desk.manager, desk.approver)
        )
        complaint = tickets.open_ticket(
            customer=tickets.CustomerDetails(name="周杰", phone="13900139000", locale="zh_CN"),
            kind="complaint",
            channel="phone",
            priority="normal",
            description="营销外呼太多。",
            user=agent,
            ip=None,
        )
        tickets.resolve(complaint, "已加入免打扰名单。", user=manager, ip=None)
        tickets.not_satisfied(complaint, "还在打。", ip=None)
        for user, message in ((agent, "a manager must give the next answer"), (manager, "took no part")):
            with pytest.raises(Conflict, match=message):
                tickets.resolve(complaint, "已再次核实。", user=user, ip=None)
        tickets.resolve(complaint, "经理复核：已停止全部外呼。", user=reviewer, ip=None)
        assert complaint.status == "resolved" and not complaint.needs_manager
        session.commit()
