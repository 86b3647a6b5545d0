"""The agent workspace over HTTP: the queue, a ticket's page and actions, staff-opened
tickets, canned replies, and who may see and do what."""

import html
import itertools
import re
from io import BytesIO

import pytest
from sqlalchemy import select

from crm.audit.models import AuditEvent
from crm.audit.service import Actor, verify_chain
from crm.auth.models import User
from crm.files.models import Attachment
from crm.tickets import canned
from crm.tickets import service as tickets
from crm.tickets.models import Status, Ticket
from tests.conftest import acting_for, submit
from tests.test_portal import submitted
from tests.test_ticket_service import PDF, refund_request

NEXT_RE = re.compile(r'href="([^"]+)" rel="next"')
REFERENCE_RE = re.compile(r'href="/t/[^/]+/tickets/\d+">(RF-\d+)</a>')
_nonces = itertools.count()


def new_ticket(app, tenant, **overrides) -> tickets.Submission:
    """A ticket as the hosted form makes it; ``customer`` overrides the customer's details."""
    with acting_for(app, tenant) as session:
        submission = tickets.submit_refund_request(
            refund_request(**overrides), nonce=f"ws-{next(_nonces)}", ip=None
        )
        session.commit()
        return submission


def change(app, tenant, ticket_number: int, operation, *args, user_id: int, **kwargs) -> None:
    """Run a service operation on ticket ``ticket_number`` as staff user ``user_id``."""
    with acting_for(app, tenant) as session:
        ticket = tickets.ticket_by_number(ticket_number)
        operation(ticket, *args, user=session.get(User, user_id), ip=None, **kwargs)
        session.commit()


def act(client, tenant, number: int, action: str, data: dict | None = None, **kwargs):
    """Press an action's button on the ticket page."""
    page = f"/t/{tenant.slug}/tickets/{number}"
    return submit(client, f"{page}/{action}", data or {}, form_page=page, **kwargs)


def resolve_and_send(client, tenant, number: int, body: str):
    """Resolve a refund request that asked for no refund: preview, then "Send final response"."""
    page = f"/t/{tenant.slug}/tickets/{number}"
    fields = {"resolve-body": body, "resolve-no_refund_requested": "y", "step": "preview"}
    preview = act(client, tenant, number, "resolve", fields)
    previewed = re.search(r'name="resolve-previewed" type="hidden" value="([0-9a-f]+)"', preview.text).group(
        1
    )
    return submit(
        client, f"{page}/resolve", {**fields, "step": "send", "resolve-previewed": previewed}, form_page=page
    )


def references(page) -> list[str]:
    return REFERENCE_RE.findall(page.text)


def audit_actions(app, tenant) -> list[str]:
    with acting_for(app, tenant) as session:
        return session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)).all()


def tracking_page(client, tenant, token: str) -> str:
    response = client.get(f"/t/{tenant.slug}/track/{token}")
    assert response.status_code == 200
    return response.text


@pytest.fixture
def desk(signed_in):
    """A new tenant with an agent signed in on ``client``."""
    return signed_in("agent")


# --- the queue ---------------------------------------------------------------------------


def test_queue_shows_open_tickets_oldest_first_with_what_an_agent_needs(app, client, desk):
    tenant, _agent = desk
    new_ticket(
        app,
        tenant,
        customer={"name": "Zhang San", "phone": "13900139000", "email": ""},
        reason="duplicate_charge",
    )
    new_ticket(app, tenant, customer={"name": "Li Si", "phone": "13700137000", "email": ""})
    page = client.get(f"/t/{tenant.slug}/tickets")
    assert page.status_code == 200
    assert references(page) == ["RF-1001", "RF-1002"]
    for shown in ("Zhang San", "Li Si", "Duplicate charge", "New", "Normal", "Unassigned", "Next due"):
        assert shown in page.text
    newest = client.get(f"/t/{tenant.slug}/tickets?sort=newest")
    assert references(newest) == ["RF-1002", "RF-1001"]
    due = client.get(f"/t/{tenant.slug}/tickets?sort=due")
    assert references(due) == ["RF-1001", "RF-1002"]


def test_queue_pages_by_keyset_without_skipping_or_repeating(app, client, desk):
    tenant, _agent = desk
    with acting_for(app, tenant) as session:
        for n in range(60):
            tickets.submit_refund_request(
                refund_request(customer={"name": f"Customer {n}"}), nonce=f"bulk-{n}", ip=None
            )
        session.commit()
    expected = [f"RF-{1001 + n}" for n in range(60)]
    for sort, order in (("oldest", expected), ("newest", expected[::-1]), ("due", expected)):
        first = client.get(f"/t/{tenant.slug}/tickets?view=all&sort={sort}")
        assert references(first) == order[:50]
        next_url = html.unescape(NEXT_RE.search(first.text).group(1))
        assert "after=" in next_url and f"sort={sort}" in next_url and "view=all" in next_url
        second = client.get(next_url)
        assert references(second) == order[50:]
        assert NEXT_RE.search(second.text) is None
        assert "First page" in second.text


def test_views_select_tickets_by_status_and_assignee(app, client, desk):
    tenant, agent = desk
    for _ in range(5):
        new_ticket(app, tenant)
    change(app, tenant, 1002, tickets.assign, agent.id, user_id=agent.id)
    change(app, tenant, 1003, tickets.request_information, "Which number?", user_id=agent.id)
    change(
        app,
        tenant,
        1004,
        tickets.resolve,
        "Refunded.",
        user_id=agent.id,
        no_refund_reason="no_refund_requested",
    )
    change(
        app,
        tenant,
        1005,
        tickets.resolve,
        "Refunded.",
        user_id=agent.id,
        no_refund_reason="no_refund_requested",
    )
    change(app, tenant, 1005, tickets.close, user_id=agent.id)

    def view(name: str, extra: str = "") -> list[str]:
        return references(client.get(f"/t/{tenant.slug}/tickets?view={name}{extra}"))

    assert view("open") == ["RF-1001", "RF-1002"]
    assert view("mine") == ["RF-1002"]
    assert view("unassigned") == ["RF-1001", "RF-1003"]
    assert view("awaiting_customer") == ["RF-1003"]
    assert view("resolved") == ["RF-1004"]
    assert view("closed") == ["RF-1005"]
    assert view("all") == ["RF-1001", "RF-1002", "RF-1003", "RF-1004", "RF-1005"]
    # An explicit filter takes the place of the view's preset for the same column.
    assert view("all", "&status=resolved") == ["RF-1004"]
    assert view("all", f"&assignee={agent.id}") == ["RF-1002"]
    assert view("all", "&assignee=none&status=awaiting_customer") == ["RF-1003"]


def test_filters_by_kind_priority_and_reason(app, client, desk):
    tenant, agent = desk
    new_ticket(app, tenant, reason="unauthorized_charge")
    new_ticket(app, tenant, reason="other")
    change(app, tenant, 1002, tickets.set_priority, "urgent", user_id=agent.id)
    base = f"/t/{tenant.slug}/tickets?view=all"
    assert references(client.get(f"{base}&priority=urgent")) == ["RF-1002"]
    assert references(client.get(f"{base}&reason=unauthorized_charge")) == ["RF-1001"]
    assert references(client.get(f"{base}&kind=refund")) == ["RF-1001", "RF-1002"]
    assert references(client.get(f"{base}&kind=complaint")) == []


@pytest.mark.parametrize(
    "q",
    [
        "RF-1002",
        "rf 1002",
        "1002",
        "Wang",
        "wang wu",
        "139 0013 9000",
        "+86 139-0013-9000",
        "9000",
        "WW@Example.test",
        "ACC-42",
        "王五",
    ],
)
def test_search_finds_a_ticket_by_number_name_phone_email_or_account(app, client, desk, q):
    tenant, _agent = desk
    li_lei = {"name": "Li Lei 李雷", "phone": "13800138000", "email": "ll@example.test"}
    new_ticket(app, tenant, customer=li_lei)
    new_ticket(
        app,
        tenant,
        customer={
            "name": "Wang Wu 王五",
            "phone": "13900139000",
            "email": "ww@example.test",
            "account_ref": "ACC-42",
        },
    )
    page = client.get(f"/t/{tenant.slug}/tickets", query_string={"view": "all", "q": q})
    assert page.status_code == 200
    assert references(page) == ["RF-1002"]


@pytest.mark.parametrize(
    "query",
    [
        {"view": "everything"},
        {"after": "yesterday"},
        {"after": "999999999999999999-1"},
        {"assignee": "12345678901234567890"},
        {"q": "x" * 201},
        {"sort": "random"},
        {"status": "lost"},
    ],
)
def test_a_bad_queue_address_is_400_with_a_message(client, desk, query):
    tenant, _agent = desk
    page = client.get(f"/t/{tenant.slug}/tickets", query_string=query)
    assert page.status_code == 400
    assert "Not a valid choice" in page.text or "not valid" in page.text or "at most 200" in page.text
    assert references(page) == []


# --- a ticket ----------------------------------------------------------------------------


def test_ticket_page_shows_the_customer_their_other_tickets_the_thread_and_files(app, client, desk):
    tenant, agent = desk
    customer = {
        "name": "Han Meimei",
        "phone": "13600136000",
        "email": "hm@example.test",
        "account_ref": "ACC-9",
    }
    new_ticket(app, tenant, customer=customer)
    new_ticket(app, tenant, customer=customer, uploads=[tickets.Upload("invoice.pdf", PDF)])
    change(app, tenant, 1002, tickets.add_note, "Billing says the charge is real.", user_id=agent.id)
    change(
        app,
        tenant,
        1002,
        tickets.log_call,
        direction="outbound",
        number="13600136000",
        duration_seconds=185,
        outcome="answered",
        notes="Customer confirmed the account.",
        user_id=agent.id,
    )
    change(app, tenant, 1002, tickets.reply, "We are checking.", user_id=agent.id)
    page = client.get(f"/t/{tenant.slug}/tickets/1002")
    assert page.status_code == 200
    text = page.text
    for shown in ("Han Meimei", "+8613600136000", "hm@example.test", "ACC-9", "RF-1001"):
        assert shown in text  # the customer panel, with their other ticket
    assert "我的号码已停用" in text  # the customer's own words
    assert "Internal note" in text and "Billing says the charge is real." in text
    assert "Outbound" in text and "3:05" in text and "Answered" in text and "Customer confirmed" in text
    assert "Reply to customer" in text and "We are checking." in text
    assert "Email to hm@example.test" in text  # the copy of the email the reply sent
    assert "Status: New → Open" in text
    assert "invoice.pdf" in text and f"/t/{tenant.slug}/tickets/1002/files/" in text


def test_agent_replies_with_a_file_and_the_customer_sees_it(app, client, desk):
    tenant, _agent = desk
    submission = new_ticket(app, tenant)
    response = act(
        client,
        tenant,
        1001,
        "reply",
        {"reply-body": "您好，已为您登记退款。", "reply-attachments": [(BytesIO(PDF), "receipt.pdf")]},
        content_type="multipart/form-data",
    )
    assert response.status_code == 302 and response.headers["Location"].endswith("/tickets/1001")
    page = client.get(response.headers["Location"])
    assert "Reply sent." in page.text
    assert "您好，已为您登记退款。" in page.text and "receipt.pdf" in page.text
    assert "Open" in page.text
    tracking = tracking_page(client, tenant, submission.tracking_token)
    assert "您好，已为您登记退款。" in tracking and "receipt.pdf" in tracking
    actions = audit_actions(app, tenant)
    assert {"ticket.replied", "attachment.added", "email.queued", "ticket.status_changed"} <= set(actions)


def test_internal_notes_and_calls_never_reach_the_tracking_page(app, client, desk):
    tenant, _agent = desk
    submission = new_ticket(app, tenant)
    assert (
        act(client, tenant, 1001, "note", {"note-body": "Customer is a known fraud risk."}).status_code == 302
    )
    logged = act(
        client,
        tenant,
        1001,
        "call",
        {
            "call-direction": "inbound",
            "call-phone": "138 0013 8000",
            "call-duration": "2:30",
            "call-outcome": "answered",
            "call-notes": "Asked about the secret refund limit.",
        },
    )
    assert logged.status_code == 302
    staff_page = client.get(f"/t/{tenant.slug}/tickets/1001").text
    assert (
        "Customer is a known fraud risk." in staff_page
        and "Asked about the secret refund limit." in staff_page
    )
    tracking = tracking_page(client, tenant, submission.tracking_token)
    assert "fraud" not in tracking and "secret refund limit" not in tracking


def test_a_call_is_logged_with_its_recording(app, client, desk):
    tenant, _agent = desk
    new_ticket(app, tenant)
    mp3 = b"ID3\x03\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x00" * 64
    response = act(
        client,
        tenant,
        1001,
        "call",
        {
            "call-direction": "outbound",
            "call-phone": "13800138000",
            "call-duration": "65",
            "call-outcome": "voicemail",
            "call-recording": (BytesIO(mp3), "call.mp3"),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    page = client.get(f"/t/{tenant.slug}/tickets/1001").text
    assert "Voicemail" in page and "1:05" in page and "call.mp3" in page and "+8613800138000" in page
    assert "ticket.call_logged" in audit_actions(app, tenant)


def test_asking_for_information_waits_for_the_customer_whose_answer_reopens(app, client, desk):
    tenant, _agent = desk
    submission = new_ticket(app, tenant)
    response = act(client, tenant, 1001, "request-info", {"info-body": "请提供充值记录截图。"})
    assert response.status_code == 302
    assert "Awaiting customer" in client.get(f"/t/{tenant.slug}/tickets/1001").text
    assert references(client.get(f"/t/{tenant.slug}/tickets?view=awaiting_customer")) == ["RF-1001"]
    tracking = tracking_page(client, tenant, submission.tracking_token)
    assert "请提供充值记录截图。" in tracking
    with acting_for(app, tenant) as session:
        tickets.customer_reply(tickets.ticket_by_number(1001), "截图见附件。", ip=None)
        session.commit()
    assert references(client.get(f"/t/{tenant.slug}/tickets?view=open")) == ["RF-1001"]


def test_assign_and_priority_show_in_the_queue(app, client, desk, make_user):
    tenant, _agent = desk
    colleague = make_user(tenant, "manager")
    new_ticket(app, tenant)
    assert act(client, tenant, 1001, "assign", {"assign-assignee_id": str(colleague.id)}).status_code == 302
    assert act(client, tenant, 1001, "priority", {"priority-priority": "high"}).status_code == 302
    queue = client.get(f"/t/{tenant.slug}/tickets?view=all").text
    assert colleague.email.split("@")[0] in queue and "High" in queue
    assert act(client, tenant, 1001, "assign", {"assign-assignee_id": ""}).status_code == 302
    assert references(client.get(f"/t/{tenant.slug}/tickets?view=unassigned")) == ["RF-1001"]
    assert {"ticket.assigned", "ticket.priority_changed"} <= set(audit_actions(app, tenant))


def test_resolve_close_and_reopen(app, client, desk):
    tenant, _agent = desk
    submission = new_ticket(app, tenant)
    resolved = resolve_and_send(client, tenant, 1001, "已退款 100 元，3 个工作日内到账。")
    assert resolved.status_code == 302
    page = client.get(f"/t/{tenant.slug}/tickets/1001").text
    assert "Ticket resolved." in page and "Resolved" in page
    assert "已退款 100 元" in tracking_page(client, tenant, submission.tracking_token)
    assert act(client, tenant, 1001, "reopen").status_code == 302
    assert "Ticket reopened." in client.get(f"/t/{tenant.slug}/tickets/1001").text
    refused = act(client, tenant, 1001, "close", {"close-confirm": "y"})
    assert refused.status_code == 409
    assert "cannot become Closed" in refused.text
    resolve_and_send(client, tenant, 1001, "Done.")
    assert act(client, tenant, 1001, "close", {"close-confirm": "y"}).status_code == 302
    assert references(client.get(f"/t/{tenant.slug}/tickets?view=closed")) == ["RF-1001"]
    closed_page = client.get(f"/t/{tenant.slug}/tickets/1001").text
    assert 'name="reply-body"' not in closed_page  # a closed ticket takes notes, not replies
    late = act(client, tenant, 1001, "reply", {"reply-body": "One more thing."})
    assert late.status_code == 409 and "reopen it first" in late.text


def test_merging_a_duplicate_into_the_same_customers_ticket(app, client, desk):
    tenant, _agent = desk
    new_ticket(app, tenant)
    new_ticket(app, tenant)
    response = act(client, tenant, 1002, "merge", {"merge-target": "rf-1001", "merge-confirm": "y"})
    assert response.status_code == 302
    duplicate = client.get(f"/t/{tenant.slug}/tickets/1002").text
    assert "Merged into" in duplicate and "Closed" in duplicate
    assert "Merged from" in client.get(f"/t/{tenant.slug}/tickets/1001").text
    assert "ticket.merged" in audit_actions(app, tenant)


@pytest.mark.parametrize(
    "target, message",
    [
        ("RF-1002", "Only tickets of the same customer can be merged."),
        ("RF-1001", "A ticket cannot be merged into itself."),
        ("RF-9999", "There is no ticket RF-9999."),
        ("", "This field is required."),
    ],
)
def test_merge_refuses_with_a_message(app, client, desk, target, message):
    tenant, _agent = desk
    new_ticket(app, tenant)
    new_ticket(app, tenant, customer={"name": "Someone Else", "phone": "13500135000", "email": ""})
    response = act(client, tenant, 1001, "merge", {"merge-target": target, "merge-confirm": "y"})
    assert response.status_code in (400, 422)
    assert message in response.text
    assert f'value="{target}"' in response.text  # what was typed is kept
    with acting_for(app, tenant):
        assert tickets.ticket_by_number(1001).status == Status.NEW


def test_staff_record_a_withdrawal_by_phone(app, client, desk):
    tenant, _agent = desk
    new_ticket(app, tenant)
    assert act(client, tenant, 1001, "withdraw").status_code == 302
    page = client.get(f"/t/{tenant.slug}/tickets/1001").text
    assert "Withdrawn" in page and "the customer withdrew" in page


@pytest.mark.parametrize(
    "action, data, status, message",
    [
        ("reply", {"reply-body": "   "}, 400, "This field is required."),
        ("reply", {"reply-body": "x" * 20_001}, 400, "Use at most 20000 characters."),
        ("note", {"note-body": ""}, 400, "This field is required."),
        ("request-info", {"info-body": ""}, 400, "This field is required."),
        ("resolve", {"resolve-body": ""}, 400, "This field is required."),
        (
            "call",
            {
                "call-direction": "inbound",
                "call-phone": "12",
                "call-duration": "1:00",
                "call-outcome": "busy",
            },
            422,
            "Enter a valid phone number.",
        ),
        (
            "call",
            {
                "call-direction": "inbound",
                "call-phone": "13800138000",
                "call-duration": "soon",
                "call-outcome": "busy",
            },
            400,
            "Enter the length as minutes:seconds",
        ),
        (
            "call",
            {
                "call-direction": "sideways",
                "call-phone": "13800138000",
                "call-duration": "1",
                "call-outcome": "busy",
            },
            400,
            "Not a valid choice",
        ),
        ("priority", {"priority-priority": "whenever"}, 400, "Not a valid choice"),
        ("assign", {"assign-assignee_id": "999999999"}, 400, "Not a valid choice"),
    ],
)
def test_bad_input_is_refused_with_a_message_and_changes_nothing(
    app, client, desk, action, data, status, message
):
    tenant, _agent = desk
    new_ticket(app, tenant)
    events_before = len(audit_actions(app, tenant))
    response = act(client, tenant, 1001, action, data)
    assert response.status_code == status
    assert message in response.text
    assert len(audit_actions(app, tenant)) == events_before
    typed = {key: value for key, value in data.items() if key.endswith(("body", "phone", "duration"))}
    for value in typed.values():
        if value.strip() and len(value) < 100:
            assert html.escape(value) in response.text  # kept for the agent to fix


def test_a_refused_file_is_named_as_text_and_nothing_is_sent(app, client, desk):
    tenant, _agent = desk
    new_ticket(app, tenant)
    evil_name = "<img src=x onerror=alert(1)>.pdf"
    response = act(
        client,
        tenant,
        1001,
        "reply",
        {
            "reply-body": "See the file.",
            "reply-attachments": [(BytesIO(b"MZ\x90\x00" + b"\x00" * 200), evil_name)],
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 422
    assert "is not an accepted file type" in response.text
    assert "<img src=x" not in response.text and "&lt;img src=x" in response.text
    assert "See the file." in response.text  # kept in the box
    assert "ticket.replied" not in audit_actions(app, tenant)


def test_html_in_bodies_and_names_is_shown_as_text(app, client, desk):
    tenant, _agent = desk
    script = "<script>alert('x')</script>"
    new_ticket(app, tenant, customer={"name": f"Eve {script}"}, description=f"Hello {script}")
    act(client, tenant, 1001, "note", {"note-body": f"<b>bold</b> {script}"})
    for url in (f"/t/{tenant.slug}/tickets/1001", f"/t/{tenant.slug}/tickets"):
        page = client.get(url).text
        assert script not in page and "<b>bold</b>" not in page
        assert "&lt;script&gt;" in page


# --- who may see and do what -------------------------------------------------------------

ACTIONS = [
    "reply",
    "request-info",
    "note",
    "call",
    "resolve",
    "assign",
    "priority",
    "merge",
    "close",
    "reopen",
]


def test_auditor_reads_everything_but_has_no_actions_and_is_recorded(app, client, signed_in, make_tenant):
    tenant = make_tenant()
    new_ticket(app, tenant, uploads=[tickets.Upload("invoice.pdf", PDF)])
    _tenant, _auditor = signed_in("auditor", tenant)
    queue = client.get(f"/t/{tenant.slug}/tickets?q=13800138000")
    assert references(queue) == ["RF-1001"] and "Open a ticket" not in queue.text
    page = client.get(f"/t/{tenant.slug}/tickets/1001")
    assert page.status_code == 200 and "我的号码已停用" in page.text
    assert '<form method="post" action="/t/' + tenant.slug + "/tickets/1001/" not in page.text
    with acting_for(app, tenant) as session:
        attachment_id = session.scalars(select(Attachment.id)).one()
    download = client.get(f"/t/{tenant.slug}/tickets/1001/files/{attachment_id}")
    assert download.status_code == 200
    download.close()
    with acting_for(app, tenant) as session:
        read = session.scalars(select(AuditEvent).where(AuditEvent.action == "audit.viewed")).all()
        assert [(event.subject_type, event.data["path"]) for event in read] == [
            ("ticket_queue", f"/t/{tenant.slug}/tickets"),
            ("ticket", f"/t/{tenant.slug}/tickets/1001"),
            ("ticket", f"/t/{tenant.slug}/tickets/1001/files/{attachment_id}"),
        ]
        assert read[2].data["attachment_id"] == attachment_id
        searched = read[0]
        assert "13800138000" not in str(searched.data)  # a search may be personal data: digested
        assert verify_chain().ok


@pytest.mark.parametrize("action", [*ACTIONS, "withdraw"])
def test_auditor_gets_403_on_every_action(app, client, signed_in, make_tenant, action):
    tenant = make_tenant()
    new_ticket(app, tenant)
    signed_in("auditor", tenant)
    assert act(client, tenant, 1001, action, {}).status_code == 403


def test_auditor_cannot_open_tickets_or_manage_canned_replies(client, signed_in):
    tenant, _auditor = signed_in("auditor")
    assert client.get(f"/t/{tenant.slug}/tickets/new").status_code == 403
    assert client.get(f"/t/{tenant.slug}/canned-replies").status_code == 403


def test_another_tenants_tickets_and_files_are_404(app, client, desk, make_tenant):
    tenant, _agent = desk
    other = make_tenant()
    new_ticket(app, other, uploads=[tickets.Upload("secret.pdf", PDF)])
    new_ticket(app, tenant)
    with acting_for(app, other) as session:
        other_file = session.scalars(select(Attachment.id)).one()
    assert client.get(f"/t/{tenant.slug}/tickets/1002").status_code == 404  # theirs: 1001 and 1002
    assert client.get(f"/t/{tenant.slug}/tickets/1001/files/{other_file}").status_code == 404
    assert act(client, tenant, 1002, "note", {"note-body": "hello"}).status_code == 404
    assert "secret.pdf" not in client.get(f"/t/{tenant.slug}/tickets/1001").text
    # Their own pages send a user of another tenant to that tenant's sign-in.
    elsewhere = client.get(f"/t/{other.slug}/tickets/1001/files/{other_file}")
    assert elsewhere.status_code == 302 and f"/t/{other.slug}/login" in elsewhere.headers["Location"]


@pytest.mark.parametrize(
    "path",
    [
        "tickets/99999999999999999999",
        "tickets/1001/files/99999999999999999999",
        "canned-replies/99999999999999999999",
        "tickets/1001?canned=99999999999999999999",
    ],
)
def test_numbers_too_large_for_the_database_name_nothing(app, client, signed_in, path):
    tenant, _admin = signed_in("admin")
    new_ticket(app, tenant)
    # A path segment past the range is no such page; a query value past it is bad input.
    assert client.get(f"/t/{tenant.slug}/{path}").status_code == (400 if "?" in path else 404)


def test_staff_download_is_an_attachment_of_the_detected_type(app, client, desk):
    tenant, _agent = desk
    new_ticket(
        app,
        tenant,
        uploads=[tickets.Upload("scan.png.pdf", PDF), tickets.Upload("notes.exe", b"plain words")],
    )
    with acting_for(app, tenant) as session:
        files = {a.filename: a.id for a in session.scalars(select(Attachment))}
    pdf = client.get(f"/t/{tenant.slug}/tickets/1001/files/{files['scan.png.pdf']}")
    assert pdf.status_code == 200 and pdf.data == PDF
    assert pdf.headers["Content-Type"] == "application/pdf"
    assert pdf.headers["Content-Disposition"].startswith("attachment;")
    assert pdf.headers["X-Content-Type-Options"] == "nosniff"
    text = client.get(f"/t/{tenant.slug}/tickets/1001/files/{files['notes.txt']}")
    assert (
        text.headers["Content-Type"].startswith("text/plain")
        and "notes.txt" in text.headers["Content-Disposition"]
    )
    pdf.close()
    text.close()


# --- tickets staff open ------------------------------------------------------------------


def test_agent_opens_a_ticket_for_a_phone_call(app, client, desk):
    tenant, _agent = desk
    new_ticket(app, tenant, customer={"name": "Li Lei", "phone": "13800138000", "email": ""})
    response = submit(
        client,
        f"/t/{tenant.slug}/tickets/new",
        {
            "channel": "phone",
            "kind": "complaint",
            "priority": "high",
            "reason": "",
            "name": "Li Lei",
            "phone": "138 0013 8000",
            "email": "",
            "account_ref": "",
            "locale": "zh_CN",
            "description": "Called to complain that the refund is late.",
        },
    )
    assert response.status_code == 302 and response.headers["Location"].endswith("/tickets/1002")
    page = client.get(response.headers["Location"]).text
    assert "Ticket RF-1002 opened." in page
    assert "Complaint" in page and "Phone" in page and "High" in page
    assert "Called to complain" in page and "RF-1001" in page  # the same customer's other ticket


@pytest.mark.parametrize(
    "overrides, status, message",
    [
        ({"phone": "12"}, 422, "Enter a valid phone number."),
        ({"phone": "", "email": ""}, 422, "Give the customer&#39;s phone number or email."),
        ({"email": "not-an-email"}, 422, "Enter a valid email address."),
        ({"channel": "web_form"}, 400, "Not a valid choice"),
        ({"name": ""}, 400, "This field is required."),
        ({"description": "x" * 20_001}, 400, "Use at most 20000 characters."),
    ],
)
def test_opening_a_ticket_with_bad_input_is_refused(app, client, desk, overrides, status, message):
    tenant, _agent = desk
    fields = {
        "channel": "email",
        "kind": "refund",
        "priority": "normal",
        "name": "Typed Name",
        "phone": "13800138000",
        "locale": "en",
        "description": "Please refund.",
        **overrides,
    }
    response = submit(client, f"/t/{tenant.slug}/tickets/new", fields)
    assert response.status_code == status
    assert message in response.text
    if fields["name"]:
        assert 'value="Typed Name"' in response.text
    with acting_for(app, tenant) as session:
        assert session.scalars(select(Ticket)).all() == []


# --- canned replies ----------------------------------------------------------------------


def test_manager_keeps_canned_replies_and_each_change_is_audited(app, client, signed_in):
    tenant, _manager = signed_in("manager")
    url = f"/t/{tenant.slug}/canned-replies"
    body = "Dear {customer_name}, your request {ticket_number} will be answered by {deadline}."
    assert submit(client, url, {"title": "Acknowledge", "body": body}).status_code == 302
    listing = client.get(url).text
    assert "Acknowledge" in listing and "{customer_name}" in listing
    with acting_for(app, tenant) as session:
        reply_id = session.scalars(select(canned.CannedReply.id)).one()
    edit = f"{url}/{reply_id}"
    assert submit(client, edit, {"title": "Acknowledgement", "body": body}).status_code == 302
    assert "Acknowledgement" in client.get(url).text
    duplicate = submit(client, url, {"title": "Acknowledgement", "body": "again"})
    assert duplicate.status_code == 422 and "Another canned reply has this title." in duplicate.text
    typo = submit(client, url, {"title": "Typo", "body": "Dear {custmer_name}"})
    assert typo.status_code == 422 and "Unknown placeholder {custmer_name}" in typo.text
    assert submit(client, f"{edit}/delete", {}, form_page=url).status_code == 302
    assert "No canned replies yet." in client.get(url).text
    assert client.get(edit).status_code == 404
    actions = audit_actions(app, tenant)
    assert [a for a in actions if a.startswith("canned_reply.")] == [
        "canned_reply.created",
        "canned_reply.updated",
        "canned_reply.deleted",
    ]


def test_agents_cannot_manage_canned_replies(client, desk):
    tenant, _agent = desk
    assert client.get(f"/t/{tenant.slug}/canned-replies").status_code == 403


def test_agent_inserts_a_canned_reply_filled_in_for_the_ticket(app, client, desk):
    tenant, _agent = desk
    new_ticket(app, tenant, customer={"name": "Wang <Wu>", "locale": "en"})
    with acting_for(app, tenant) as session:
        reply = canned.create_canned(
            title="Acknowledge",
            body="Dear {customer_name}, we answer {ticket_number} by {deadline}.",
            actor=Actor.operator("test"),
        )
        session.commit()
        reply_id = reply.id
    page = client.get(f"/t/{tenant.slug}/tickets/1001")
    assert "Acknowledge" in page.text
    assert "Dear Wang &lt;Wu&gt;, we answer RF-1001 by" in page.text  # in the picker, escaped
    filled = client.get(f"/t/{tenant.slug}/tickets/1001?canned={reply_id}&into=info")
    box = re.search(r'<textarea[^>]*name="info-body"[^>]*>(.*?)</textarea>', filled.text, re.S).group(1)
    assert box.strip().startswith("Dear Wang &lt;Wu&gt;, we answer RF-1001 by")


def test_tickets_the_customer_rejected_wait_in_the_managers_view(app, client, signed_in):
    tenant, manager = signed_in("manager")
    rejected = submitted(app, tenant)
    with acting_for(app, tenant) as session:
        ticket = tickets.ticket_by_number(rejected.number)
        tickets.resolve(
            ticket,
            "Refunded.",
            user=session.get(User, manager.id),
            ip=None,
            no_refund_reason="no_refund_requested",
        )
        tickets.not_satisfied(ticket, "Not enough.", ip=None)
        session.commit()
    home = client.get(f"/t/{tenant.slug}/")
    assert "Need a manager" in home.text
    queue = client.get(f"/t/{tenant.slug}/tickets?view=needs_manager")
    assert rejected.reference in queue.text
