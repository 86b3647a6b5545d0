"""What a case file says about its case, checked against the rows and the trail: the
requester as submitted, only this case's events, the policy bytes its digest names,
hostile text escaped in the timeline in both languages, and how long reading a long
case takes."""

import hashlib
import json
import time
import zipfile

import pytest
from sqlalchemy import select

from crm.audit.chain import canonical_text
from crm.audit.models import AuditEvent
from crm.audit.service import Actor
from crm.auth.models import User
from crm.exports import versions
from crm.exports.case_file import case_document, case_events, write_case_file
from crm.policies.models import PolicyVersion
from crm.tickets import service as tickets
from crm.tickets.staff_actions import add_note
from tests.conftest import acting_for, unique
from tests.test_portal import PNG
from tests.test_refunds import desk  # noqa: F401  (a tenant with a published policy)
from tests.test_ticket_service import refund_request

HOSTILE = "<script>alert(1)</script>"


def submit(app, tenant, **customer) -> int:
    with acting_for(app, tenant) as session:
        number = tickets.submit_refund_request(
            refund_request(customer=customer), nonce=unique("n"), ip=None
        ).ticket.number
        session.commit()
    return number


def test_the_requester_is_as_submitted_even_after_another_submission_with_the_same_phone(app, make_tenant):
    tenant = make_tenant()
    # The probe's case: someone else types the first requester's phone and name with their own email.
    first = submit(app, tenant, name="王芳", phone="13800138000", email="")
    second = submit(app, tenant, name="王芳", phone="13800138000", email="stranger@example.test")
    with acting_for(app, tenant):
        earlier, _ = case_document(tickets.ticket_by_number(first))
        later, _ = case_document(tickets.ticket_by_number(second))
        assert tickets.ticket_by_number(first).customer_id == tickets.ticket_by_number(second).customer_id
    assert (earlier["requester"]["requester_name"], earlier["requester"]["requester_email"]) == ("王芳", None)
    assert later["requester"]["requester_email"] == "stranger@example.test"


def test_a_cases_events_are_its_own_and_never_another_tickets_or_tenants(app, make_tenant):
    tenant, other = make_tenant(), make_tenant()
    mine = submit(app, tenant, phone="13900000001", email="mine@example.test")
    neighbour = submit(app, tenant, phone="13900000002", email="neighbour@example.test")
    submit(app, other, phone="13900000001", email="mine@example.test")
    with acting_for(app, tenant) as session:
        ticket = tickets.ticket_by_number(mine)
        theirs = tickets.ticket_by_number(neighbour)
        customer = str(ticket.customer_id)
        rows = case_events(ticket, 10**9, {ticket.policy_version_id} - {None})
        seqs = [row.seq for row in rows]
        own = session.scalars(
            select(AuditEvent.seq).where(
                AuditEvent.subject_type == "ticket", AuditEvent.subject_id == str(ticket.id)
            )
        ).all()
        about_neighbour = session.scalars(
            select(AuditEvent.seq).where(
                (AuditEvent.subject_type == "ticket") & (AuditEvent.subject_id == str(theirs.id))
                | (AuditEvent.subject_type == "customer") & (AuditEvent.subject_id == str(theirs.customer_id))
            )
        ).all()
    assert seqs == sorted(seqs) and set(own) <= set(seqs)
    assert {row.tenant_id for row in rows} == {tenant.id}
    assert not set(about_neighbour) & set(seqs)
    for row in rows:
        if row.subject_type == "email":
            assert row.data["ticket_id"] == ticket.id
        elif row.action != "policy.published":
            assert (row.subject_type, row.subject_id) in {("ticket", str(ticket.id)), ("customer", customer)}


def test_policy_files_hold_the_bytes_whose_digest_the_published_event_records(app, desk):  # noqa: F811
    number = submit(app, desk.tenant)
    with acting_for(app, desk.tenant) as session:
        ticket = tickets.ticket_by_number(number)
        assert ticket.policy_version_id is not None
        [file] = versions.policy_files({ticket.policy_version_id})
        version = session.get(PolicyVersion, ticket.policy_version_id)
        event = session.scalars(select(AuditEvent).where(AuditEvent.seq == file.seq)).one()
    assert file.content == canonical_text({"texts": version.texts, "terms": version.terms}).encode()
    assert hashlib.sha256(file.content).hexdigest() == version.sha256
    assert event.action == "policy.published" and event.data["sha256"] == version.sha256
    assert file.reference == {"path": f"policy/v{version.number}.json", "seq": file.seq, "pointer": "/sha256"}


@pytest.mark.parametrize(
    ("locale", "headings"),
    [
        ("en", ("Case timeline", "Requester", "Conversation", "Deadlines", "Customer's message")),
        ("zh_CN", ("案件时间线", "申请人", "沟通记录", "期限", "客户留言")),
    ],
)
def test_the_timeline_escapes_a_hostile_name_in_both_languages(app, make_tenant, tmp_path, locale, headings):
    tenant = make_tenant(locale=locale)
    number = submit(app, tenant, name=HOSTILE)
    with acting_for(app, tenant) as session:
        write_case_file(tickets.ticket_by_number(number), tmp_path / "case.zip", actor=Actor.operator("test"))
        session.commit()
    with zipfile.ZipFile(tmp_path / "case.zip") as archive:
        timeline = archive.read("timeline.html").decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in timeline
    assert "<script" not in timeline.lower()
    assert f"RF-{number}" in timeline
    for heading in headings:
        assert heading in timeline
    assert "inbound_message" not in timeline and "outbound_email" not in timeline  # entries named in words


def test_reading_a_case_with_200_thread_entries_is_quick(app, make_tenant, make_user):
    tenant = make_tenant()
    agent = make_user(tenant, "agent")
    number = submit(app, tenant)
    with acting_for(app, tenant) as session:
        ticket = tickets.ticket_by_number(number)
        user = session.get(User, agent.id)
        for index in range(200):
            add_note(ticket, f"note {index}", user=user, ip=None)
        session.commit()
    with acting_for(app, tenant):
        ticket = tickets.ticket_by_number(number)
        started = time.perf_counter()
        document, _ = case_document(ticket)
        took = time.perf_counter() - started
    assert len(document["thread"]) >= 201
    assert [entry["body"] for entry in document["thread"] if entry["body"].startswith("note ")][
        -1
    ] == "note 199"
    print(f"case_document for {len(document['thread'])} thread entries: {took * 1000:.0f} ms")


def resolve(document, pointer: str):
    """RFC 6901, as an inspector resolves a reference."""
    for token in pointer.split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        document = document[int(token)] if isinstance(document, list) else document[token]
    return document


def test_every_reference_points_at_an_event_recording_the_files_digest(app, desk, tmp_path):  # noqa: F811
    request = refund_request(uploads=[tickets.Upload("账单.png", PNG)])
    with acting_for(app, desk.tenant) as session:
        ticket = tickets.submit_refund_request(request, nonce=unique("n"), ip=None).ticket
        session.commit()
        write_case_file(ticket, tmp_path / "case.zip", actor=Actor.operator("test"))
        session.commit()
    with zipfile.ZipFile(tmp_path / "case.zip") as archive:
        manifest = json.loads(archive.read("manifest.json"))
        events = {
            line["event"]["seq"]: line["event"]
            for line in map(json.loads, archive.read("events.jsonl").splitlines())
        }
        contents = {
            reference["path"]: archive.read(reference["path"]) for reference in manifest["references"]
        }
    assert {path.split("/")[0] for path in contents} == {"attachments", "policy"}
    assert contents[f"attachments/{hashlib.sha256(PNG).hexdigest()}"] == PNG
    for reference in manifest["references"]:
        digest = resolve(events[reference["seq"]]["data"], reference["pointer"])
        assert digest == hashlib.sha256(contents[reference["path"]]).hexdigest()
