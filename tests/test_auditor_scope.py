"""The auditor (issue 12): an access window enforced at sign-in and on every request, a
ticket scope outside which a ticket is a 404 like another tenant's, no change of any
kind, every page read on the record, and the admin's grant form."""

import html
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from crm.audit.models import AuditEvent, AuditInbox
from crm.audit.service import Actor, verify_chain
from crm.auth import service as auth
from crm.auth.models import StaffSession, User
from crm.auth.scope import MAX_SCOPE_TICKETS
from crm.columns import utcnow
from crm.files.models import Attachment
from crm.tickets import service as tickets
from crm.tickets.models import Ticket
from tests.conftest import PASSWORD, StaffUser, acting_for, csrf_token, login, submit
from tests.test_ticket_service import PDF
from tests.test_workspace import new_ticket, references

# When the desk's three tickets came in: 1001 was logged late (its receipt time was set
# back), the others when they were logged.
RECEIVED = {
    1001: datetime(2026, 1, 10, 4, 0, tzinfo=UTC),
    1002: datetime(2026, 2, 10, 4, 0, tzinfo=UTC),
    1003: datetime(2026, 3, 10, 4, 0, tzinfo=UTC),
}


@pytest.fixture
def desk(app, make_tenant, make_user):
    """A tenant (in UTC) with three tickets, each with a file, received in January,
    February and March; its admin; and the tickets' ids and files' ids by number."""
    tenant = make_tenant(timezone="UTC")
    admin = make_user(tenant, "admin")
    for _ in RECEIVED:
        new_ticket(app, tenant, uploads=[tickets.Upload("invoice.pdf", PDF)])
    with acting_for(app, tenant) as session:
        session.execute(update(Ticket).where(Ticket.number == 1001).values(received_at=RECEIVED[1001]))
        for number in (1002, 1003):
            session.execute(update(Ticket).where(Ticket.number == number).values(created_at=RECEIVED[number]))
        session.commit()
        ids = dict(session.execute(select(Ticket.number, Ticket.id)).all())
        files = dict(
            session.execute(
                select(Ticket.number, Attachment.id).join(Ticket, Ticket.id == Attachment.ticket_id)
            ).all()
        )
    return tenant, admin, ids, files


@pytest.fixture
def make_auditor(app):
    """An auditor of ``tenant`` with the given window and scope, made by the service."""

    def make(tenant, **access) -> StaffUser:
        with acting_for(app, tenant) as session:
            user = auth.create_user(
                email=f"auditor-{utcnow().timestamp()}@example.test",
                role="auditor",
                password=PASSWORD,
                actor=Actor.operator("test"),
                access=auth.Access(**access),
            )
            session.commit()
            return StaffUser(user.id, user.email, user.role)

    return make


def set_user(app, tenant, user_id: int, **values) -> None:
    with acting_for(app, tenant) as session:
        session.execute(update(User).where(User.id == user_id).values(**values))
        session.commit()


def events(app, tenant, action: str) -> list[AuditEvent]:
    with acting_for(app, tenant) as session:
        found = session.scalars(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
        )
        return list(found)


def event_count(app, tenant) -> int:
    with acting_for(app, tenant) as session:
        chained = session.scalar(select(func.count()).select_from(AuditEvent))
        return chained + session.scalar(select(func.count()).select_from(AuditInbox))


def flash_text(response) -> str:
    return html.unescape(response.text)


# --- the window ------------------------------------------------------------------------------


def test_sign_in_before_the_window_opens_is_refused_saying_when_it_starts(app, client, desk, make_auditor):
    tenant, *_ = desk
    starts = utcnow() + timedelta(days=2)
    auditor = make_auditor(tenant, starts_at=starts)
    response = login(client, tenant, auditor)
    assert response.status_code == 403
    assert "Your access starts on" in flash_text(response)
    assert str(starts.year) in response.text and starts.strftime("%b") in response.text
    assert client.get(f"/t/{tenant.slug}/tickets").status_code == 302  # not signed in
    refused = events(app, tenant, "auth.login_refused")[-1]
    assert refused.data["reason"] == "access_not_started" and refused.subject_id == str(auditor.id)


def test_sign_in_after_the_window_ended_is_refused_saying_when_it_ended(app, client, desk, make_auditor):
    tenant, *_ = desk
    auditor = make_auditor(tenant)
    set_user(app, tenant, auditor.id, access_expires_at=datetime(2026, 3, 31, 23, 59, 59, tzinfo=UTC))
    response = login(client, tenant, auditor)
    assert response.status_code == 403
    assert "Your access ended on" in flash_text(response) and "2026" in response.text
    assert "Ask an admin" in flash_text(response)
    # Only the account's owner learns it: a wrong password gets the usual answer.
    wrong = login(app.test_client(), tenant, auditor, password="not the password")
    assert wrong.status_code == 401 and "Your access" not in flash_text(wrong)
    assert events(app, tenant, "auth.login_refused")[-1].data["reason"] == "access_ended"


def test_a_signed_in_session_ends_on_its_next_request_once_the_window_closes(app, client, desk, make_auditor):
    tenant, *_ = desk
    auditor = make_auditor(tenant, expires_at=utcnow() + timedelta(days=1))
    assert login(client, tenant, auditor).status_code == 302
    assert client.get(f"/t/{tenant.slug}/tickets/1001").status_code == 200
    set_user(app, tenant, auditor.id, access_expires_at=utcnow() - timedelta(seconds=1))
    response = client.get(f"/t/{tenant.slug}/tickets/1001", follow_redirects=True)
    assert "Sign in" in response.text and "Your access ended on" in flash_text(response)
    ended = events(app, tenant, "auth.access_ended")
    assert len(ended) == 1 and ended[0].subject_id == str(auditor.id)
    with acting_for(app, tenant) as session:
        assert session.scalars(select(StaffSession.end_reason)).all() == ["access_window"]
    # The session is over for good: extending the window does not bring the cookie back.
    set_user(app, tenant, auditor.id, access_expires_at=utcnow() + timedelta(days=1))
    assert client.get(f"/t/{tenant.slug}/tickets/1001").status_code == 302


# --- the scope -------------------------------------------------------------------------------

SCOPES = {
    "all": ({}, {1001, 1002, 1003}),
    "listed tickets": ({"scope_kind": "tickets", "ticket_numbers": (1001, 1003)}, {1001, 1003}),
    # February, by the time of receipt: 1001 was logged in February too but received in January.
    "received in February": (
        {
            "scope_kind": "received",
            "received_from": datetime(2026, 2, 1, tzinfo=UTC),
            "received_before": datetime(2026, 3, 1, tzinfo=UTC),
        },
        {1002},
    ),
    "received from March on": (
        {"scope_kind": "received", "received_from": datetime(2026, 3, 1, tzinfo=UTC)},
        {1003},
    ),
}


@pytest.mark.parametrize("name", SCOPES)
def test_a_ticket_outside_the_scope_is_a_404_everywhere_and_never_listed(
    app, client, desk, make_auditor, name
):
    tenant, _admin, ids, files = desk
    access, in_scope = SCOPES[name]
    auditor = make_auditor(tenant, **access)
    assert login(client, tenant, auditor).status_code == 302
    base = f"/t/{tenant.slug}"
    for number in RECEIVED:
        expected = 200 if number in in_scope else 404
        assert client.get(f"{base}/tickets/{number}").status_code == expected, number
        assert client.get(f"{base}/tickets/{number}/refund").status_code == expected, number
        download = client.get(f"{base}/tickets/{number}/files/{files[number]}")
        assert download.status_code == expected, number
        download.close()
        found = client.get(f"{base}/tickets?view=all&q=RF-{number}")
        assert references(found) == ([f"RF-{number}"] if number in in_scope else [])
    listed = client.get(f"{base}/tickets?view=all")
    assert set(references(listed)) == {f"RF-{number}" for number in in_scope}
    shown = client.get(f"{base}/tickets/{min(in_scope)}").text
    # The same customer's other tickets: only those in scope.
    for number in set(RECEIVED) - in_scope:
        assert f"RF-{number}" not in shown
    trail = client.get(f"{base}/audit?subject_type=ticket").text
    for number in RECEIVED:
        assert (f"ticket:{ids[number]}<" in trail) == (number in in_scope), number


def test_the_audit_trail_of_a_limited_auditor_shows_only_its_tickets_and_its_own_reading(
    app, client, desk, make_auditor
):
    tenant, _admin, ids, _files = desk
    auditor = make_auditor(tenant, scope_kind="tickets", ticket_numbers=(1002,))
    assert login(client, tenant, auditor).status_code == 302
    client.get(f"/t/{tenant.slug}/tickets/1002")
    trail = client.get(f"/t/{tenant.slug}/audit")
    assert trail.status_code == 200
    subjects = set(
        re.findall(r'<td class="mono">(\w+(?::\d+)?)</td>\s*<td class="mono small audit-data">', trail.text)
    )
    assert subjects and subjects <= {f"ticket:{ids[1002]}", f"user:{auditor.id}", "page", "ticket_queue"}
    assert "user.created" not in trail.text  # the admin's doings are not the auditor's to read
    refused = client.get(f"/t/{tenant.slug}/audit?subject_id=RF-1001")
    assert refused.status_code == 400 and "No ticket has the reference RF-1001" in html.unescape(refused.text)


def test_another_tenants_ticket_is_a_404_and_cannot_be_granted(app, client, desk, make_tenant, make_auditor):
    tenant, admin, _ids, _files = desk
    other = make_tenant()
    for _ in range(5):
        new_ticket(app, other)
    auditor = make_auditor(tenant)
    assert login(client, tenant, auditor).status_code == 302
    assert client.get(f"/t/{tenant.slug}/tickets/1005").status_code == 404  # only the other tenant has it
    admin_client = app.test_client()
    login(admin_client, tenant, admin)
    response = grant(admin_client, tenant, scope_kind="tickets", scope_tickets="RF-1001, RF-1005")
    assert response.status_code == 422 and "No ticket has the number 1005." in flash_text(response)


# --- the auditor changes nothing -------------------------------------------------------------

# What an auditor may POST: their own session, language and account, and their own
# notifications; and the customers' public pages, which anyone may use.
AUDITOR_MAY_POST = {
    "auth.login",
    "auth.logout",
    "auth.choose_language",
    "auth.account",
    "auth.end_session",
    "auth.end_other_sessions",
    "auth.forgot_password",
    "auth.reset_password",
    "auth.second_step",
    "auth.two_factor",
    "bulk.save_view",  # their own queue views, like their language
    "bulk.delete_view",
    "sla.notifications_read",
}


def test_every_post_route_refuses_an_auditor_and_changes_nothing(app, client, desk, make_auditor):
    tenant, admin, *_ = desk
    auditor = make_auditor(tenant)
    assert login(client, tenant, auditor).status_code == 302
    token = csrf_token(client, f"/t/{tenant.slug}/")
    rules = [
        rule
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/t/<tenant>/")
        and "POST" in rule.methods
        # The customers' and prospects' public pages, and the API, which takes keys, not sessions.
        and not rule.endpoint.startswith(("portal.", "leads_public.", "api."))
    ]
    endpoints = {rule.endpoint for rule in rules}
    assert endpoints >= AUDITOR_MAY_POST  # the exceptions name real routes
    refused = [rule for rule in rules if rule.endpoint not in AUDITOR_MAY_POST]
    assert len(refused) >= 30
    values = {
        **{"number": 1001, "user_id": admin.id, "reply_id": 1, "name": "default", "verdict": "approve"},
        **{"action": "enable", "reference": "LD-1001", "activity_id": 1, "entry_id": 1, "endpoint_id": 1},
        **{
            "delivery_id": 1,
            "key_id": 1,
            "call_id": 1,
            "escalation_id": 1,
            "message_id": 1,
            "view_id": 1,
            "customer_id": 1,
        },
    }
    before = event_count(app, tenant)
    for rule in refused:
        path = re.sub(r"<(?:[^:>]+:)?(\w+)>", lambda m: str(values.get(m.group(1), tenant.slug)), rule.rule)
        response = client.post(path, data={"csrf_token": token, "role": "admin", "body": "x"})
        assert response.status_code == 403, rule.rule
    assert event_count(app, tenant) == before
    assert client.get(f"/t/{tenant.slug}/tickets/1001").status_code == 200  # still signed in


# --- what an auditor reads is recorded -------------------------------------------------------


def test_every_page_and_file_an_auditor_opens_is_an_audit_viewed_event(app, client, desk, make_auditor):
    tenant, _admin, ids, files = desk
    auditor = make_auditor(tenant, scope_kind="tickets", ticket_numbers=(1001,))
    assert login(client, tenant, auditor).status_code == 302
    base = f"/t/{tenant.slug}"
    opened = [
        (f"{base}/", 200, ("page", "auth.home")),
        (f"{base}/tickets?q=13800138000", 200, ("ticket_queue", None)),
        (f"{base}/tickets/1001", 200, ("ticket", str(ids[1001]))),
        (f"{base}/tickets/1001/refund", 200, ("ticket", str(ids[1001]))),
        (f"{base}/tickets/1001/files/{files[1001]}", 200, ("ticket", str(ids[1001]))),
        (f"{base}/tickets/1002", 404, ("page", "tickets.show")),
        (f"{base}/audit", 200, ("audit_trail", None)),
    ]
    for path, status, _subject in opened:
        response = client.get(path)
        assert response.status_code == status, path
        response.close()
    read = events(app, tenant, "audit.viewed")
    assert [(event.data["path"], event.data["status"]) for event in read] == [
        (path.split("?")[0], status) for path, status, _subject in opened
    ]
    assert [(event.subject_type, event.subject_id) for event in read] == [subject for *_, subject in opened]
    assert all(event.actor_id == str(auditor.id) for event in read)
    assert read[4].data["sha256"] and read[4].data["attachment_id"] == files[1001]
    assert read[5].data["number"] == 1002  # what was asked for, though it does not exist for them
    assert "13800138000" not in str(read[1].data)  # a search may be personal: digested
    with acting_for(app, tenant):
        assert verify_chain().ok


def test_other_roles_reading_is_not_recorded(app, client, desk):
    tenant, admin, *_ = desk
    login(client, tenant, admin)
    before = event_count(app, tenant)
    assert client.get(f"/t/{tenant.slug}/tickets/1001").status_code == 200
    assert event_count(app, tenant) == before


# --- the admin grants an auditor -------------------------------------------------------------


def grant(client, tenant, *, follow_redirects: bool = False, **fields):
    data = {
        "email": "inspector@regulator.test",
        "display_name": "Inspector",
        "role": "auditor",
        "password": "long enough pw",
        "scope_kind": "all",
        **fields,
    }
    return submit(client, f"/t/{tenant.slug}/admin/users", data, follow_redirects=follow_redirects)


def day(offset: int) -> str:
    return (utcnow() + timedelta(days=offset)).date().isoformat()


def test_admin_grants_a_limited_auditor_and_the_grant_is_audited_with_ids_only(app, client, desk):
    tenant, admin, ids, _files = desk
    login(client, tenant, admin)
    response = grant(
        client,
        tenant,
        access_starts_on=day(0),
        access_expires_on=day(30),
        scope_kind="tickets",
        scope_tickets="RF-1001,\n#1003",
        follow_redirects=True,
    )
    assert response.status_code == 200
    assert "inspector@regulator.test can now sign in." in flash_text(response)
    assert "These tickets only" in response.text
    created = events(app, tenant, "user.created")[-1]
    assert created.data["role"] == "auditor"
    assert created.data["scope"] == {"kind": "tickets", "ticket_ids": sorted([ids[1001], ids[1003]])}
    assert created.data["access_expires_at"].startswith(day(30)) and created.data[
        "access_expires_at"
    ].endswith("Z")
    assert "inspector" not in str(created.data)  # the email only as a digest
    with acting_for(app, tenant) as session:
        auditor_id = session.scalar(select(User.id).where(User.email == "inspector@regulator.test"))
    # The edit page shows the grant as it was typed, and changing the scope is audited too.
    edit = client.get(f"/t/{tenant.slug}/admin/users/{auditor_id}")
    assert "RF-1001, RF-1003" in edit.text and f'value="{day(30)}"' in edit.text
    changed = submit(
        client,
        f"/t/{tenant.slug}/admin/users/{auditor_id}",
        {
            "role": "auditor",
            "active": "y",
            "access_expires_on": day(30),
            "scope_kind": "received",
            "scope_received_from": "2026-02-01",
            "scope_received_until": "2026-02-28",
        },
    )
    assert changed.status_code == 302
    event = events(app, tenant, "user.changed")[-1]
    assert event.data["scope"]["before"]["kind"] == "tickets"
    assert event.data["scope"]["after"] == {
        "kind": "received",
        "received_from": "2026-02-01T00:00:00.000000Z",
        "received_before": "2026-03-01T00:00:00.000000Z",
    }
    inspector = app.test_client()
    login(inspector, tenant, StaffUser(auditor_id, "inspector@regulator.test", "auditor", "long enough pw"))
    assert set(references(inspector.get(f"/t/{tenant.slug}/tickets?view=all"))) == {"RF-1002"}


def test_an_auditor_whose_access_starts_later_is_told_so(client, desk):
    tenant, admin, *_ = desk
    login(client, tenant, admin)
    response = grant(client, tenant, access_starts_on=day(3), follow_redirects=True)
    assert response.status_code == 200
    text = flash_text(response)
    assert "inspector@regulator.test can sign in from" in text and "can now sign in" not in text
    assert "Not started" in text


BAD_GRANTS = [
    ({"access_expires_on": day(-1)}, 422, "This access would already have ended"),
    ({"access_starts_on": day(5), "access_expires_on": day(2)}, 422, "Access must end after it starts."),
    ({"access_expires_on": "31/12/2026"}, 400, "Not a valid date value."),
    ({"scope_kind": "everything"}, 400, "Not a valid choice."),
    ({"scope_kind": "received"}, 422, "Give the first or the last day of receipt, or both."),
    (
        {"scope_kind": "received", "scope_received_from": "2026-03-01", "scope_received_until": "2026-02-01"},
        422,
        "The last day cannot be before the first.",
    ),
    ({"scope_kind": "received", "scope_received_until": "9999-12-31"}, 422, "This date is out of range."),
    (
        {"scope_kind": "tickets", "scope_tickets": ""},
        422,
        "List the numbers of the tickets the auditor may read.",
    ),
    ({"scope_kind": "tickets", "scope_tickets": "RF-1001, RF-9999"}, 422, "No ticket has the number 9999."),
    ({"scope_kind": "tickets", "scope_tickets": "RF-1001 hello"}, 422, "“hello” is not a ticket number."),
    (
        {"scope_kind": "tickets", "scope_tickets": ",".join(str(n) for n in range(1, MAX_SCOPE_TICKETS + 2))},
        422,
        f"List at most {MAX_SCOPE_TICKETS} tickets",
    ),
    ({"scope_kind": "tickets", "scope_tickets": "1," * 20000}, 400, "Field cannot be longer than"),
    ({"role": "agent", "scope_kind": "tickets", "scope_tickets": "1001"}, 422, "Only an auditor's access"),
]


@pytest.mark.parametrize("fields, status, message", BAD_GRANTS)
def test_a_bad_grant_is_refused_beside_its_field_and_nothing_is_created(
    app, client, desk, fields, status, message
):
    tenant, admin, *_ = desk
    login(client, tenant, admin)
    before = event_count(app, tenant)
    response = grant(client, tenant, **fields)
    assert response.status_code == status
    assert message in flash_text(response)
    assert "inspector@regulator.test" in response.text  # what was typed stays
    assert event_count(app, tenant) == before
    with acting_for(app, tenant) as session:
        assert session.scalar(select(User.id).where(User.email == "inspector@regulator.test")) is None


def test_an_auditor_whose_window_ended_cannot_be_saved_as_is_but_can_be_deactivated(
    app, client, desk, make_auditor
):
    tenant, admin, *_ = desk
    auditor = make_auditor(tenant)
    set_user(app, tenant, auditor.id, access_expires_at=utcnow() - timedelta(days=1))
    login(client, tenant, admin)
    page = f"/t/{tenant.slug}/admin/users/{auditor.id}"
    assert "Access ended" in client.get(f"/t/{tenant.slug}/admin/users").text
    kept = submit(
        client, page, {"role": "auditor", "active": "y", "access_expires_on": day(-1), "scope_kind": "all"}
    )
    assert kept.status_code == 422 and "This access would already have ended" in flash_text(kept)
    extended = submit(
        client, page, {"role": "auditor", "active": "y", "access_expires_on": day(7), "scope_kind": "all"}
    )
    assert extended.status_code == 302
    assert login(app.test_client(), tenant, auditor).status_code == 302
    deactivated = submit(client, page, {"role": "auditor", "access_expires_on": day(-1), "scope_kind": "all"})
    assert deactivated.status_code == 302
