"""Case files as an inspector gets them: downloaded or exported for one ticket, and
verified by the standalone verify.py alone in a folder; what they hold, who may have
them, and that each download is on the record."""

import hashlib
import json
import subprocess
import zipfile
from decimal import Decimal
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from sqlalchemy import select

from crm.audit.models import AuditEvent
from crm.auth.models import User
from crm.tickets import service as tickets
from tests.conftest import acting_for, login, run_bundled_verifier, unique
from tests.test_portal import PDF, PNG
from tests.test_refunds import (
    PARTIAL,
    PURCHASED,
    WEDNESDAY_10AM,
    decide,
    desk,  # noqa: F401  (the fixture `case` uses)
    pay,
    shanghai,
    staff_client,
    travel,
)
from tests.test_ticket_service import refund_request


@pytest.fixture
def case(app, desk):  # noqa: F811
    """A refund request with two files, a decision and a payout."""
    tenant = desk.tenant
    with travel(WEDNESDAY_10AM):
        request = refund_request(
            purchase_date=PURCHASED,
            amount=Decimal("199.00"),
            customer={"name": "王小明 <b>", "email": "xm@example.test"},
            uploads=[tickets.Upload("账单.png", PNG), tickets.Upload("合同.pdf", PDF)],
        )
        with acting_for(app, tenant) as session:
            number = tickets.submit_refund_request(request, nonce=unique("n"), ip=None).ticket.number
            session.commit()
        agent = staff_client(app, tenant, desk.agent)
        assert decide(agent, tenant, number, **PARTIAL).status_code == 302
    with travel(shanghai(2026, 9, 18, 10)):
        assert pay(staff_client(app, tenant, desk.agent), tenant, number, "50.00").status_code == 302
    return desk, number


SCHEMA = json.loads((Path(__file__).resolve().parent.parent / "docs" / "case-file.schema.json").read_text())
Draft202012Validator.check_schema(SCHEMA)
SCHEMA_VALIDATOR = Draft202012Validator(SCHEMA)


def run_verifier(bundle: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    return run_bundled_verifier(bundle, tmp_path)


def test_a_manager_downloads_a_case_file_that_verifies_offline(app, case, tmp_path):
    refund_desk, case = case
    tenant = refund_desk.tenant
    manager = staff_client(app, tenant, refund_desk.manager)
    response = manager.get(f"/t/{tenant.slug}/tickets/{case}/case-file")
    assert response.status_code == 200 and response.mimetype == "application/zip"
    assert f'filename="RF-{case}-case-file.zip"' in response.headers["Content-Disposition"]
    bundle = tmp_path / "case.zip"
    bundle.write_bytes(response.data)
    result = run_verifier(bundle, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: everything above holds" in result.stdout
    assert (
        "files named by events: 3, each with the digest its event records" in result.stdout
    )  # 2 files, 1 policy

    with zipfile.ZipFile(bundle) as archive:
        names = set(archive.namelist())
        document = json.loads(archive.read("case.json"))
        events = [json.loads(line)["event"] for line in archive.read("events.jsonl").splitlines()]
        timeline = archive.read("timeline.html").decode()
        for content in (PNG, PDF):
            assert archive.read(f"attachments/{hashlib.sha256(content).hexdigest()}") == content
    assert {"case.json", "checkpoint.json", "events.jsonl", "keys.json", "manifest.json", "manifest.sig",
            "timeline.html", "verify.py", "policy/v1.json"} <= names  # fmt: skip
    SCHEMA_VALIDATOR.validate(document)  # docs/case-file.schema.json, exactly
    assert not SCHEMA_VALIDATOR.is_valid({**document, "requester": {"requester_name": "x"}})
    assert document["requester"]["requester_name"] == "王小明 <b>"
    assert document["ticket"]["reference"] == f"RF-{case}"
    assert [d["amount_minor"] for d in document["decisions"]] == [7550]
    by_seq = {event["seq"]: event for event in events}
    assert document["status_history"], "a decided request changed status"
    for change in document["status_history"]:
        recorded = by_seq[change["event_seq"]]
        assert recorded["action"] == "ticket.status_changed"
        assert (recorded["data"]["before"], recorded["data"]["after"]) == (change["from"], change["to"])
    assert [p["amount_minor"] for p in document["payouts"]] == [5000]
    assert {"ticket.created", "attachment.added", "refund.decision_proposed", "refund.payout_recorded",
            "policy.published"} <= {event["action"] for event in events}  # fmt: skip
    assert "王小明 &lt;b&gt;" in timeline and "<b>" not in timeline.split("<body>")[1]
    with acting_for(app, tenant) as session:
        exported = session.scalars(select(AuditEvent).where(AuditEvent.action == "export.created")).one()
    assert exported.data["kind"] == "case_file" and exported.actor_id == str(refund_desk.manager.id)


def test_the_cli_writes_the_same_file_and_refuses_unknown_tickets(app, runner, case, tmp_path):
    refund_desk, case = case
    tenant = refund_desk.tenant
    output = tmp_path / "RF.zip"
    result = runner.invoke(args=["export", "case", "--tenant", tenant.slug, str(case), "-o", str(output)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"case file: {output}, 9 files, ")  # the manifest lists 9, then itself
    assert run_verifier(output, tmp_path).returncode == 0
    missing = runner.invoke(
        args=["export", "case", "--tenant", tenant.slug, "99999", "-o", str(tmp_path / "x.zip")]
    )
    assert missing.exit_code == 2 and "has no ticket 99999" in missing.output
    assert not (tmp_path / "x.zip").exists()


def test_agents_may_not_have_case_files_and_other_tenants_tickets_are_not_found(
    app, case, make_tenant, make_user
):
    refund_desk, case = case
    tenant = refund_desk.tenant
    agent = staff_client(app, tenant, refund_desk.agent)
    assert agent.get(f"/t/{tenant.slug}/tickets/{case}/case-file").status_code == 403
    manager = staff_client(app, tenant, refund_desk.manager)
    assert manager.get(f"/t/{tenant.slug}/tickets/{case + 500}/case-file").status_code == 404
    other = make_tenant()
    outsider = make_user(other, "admin")
    client = app.test_client()
    assert login(client, other, outsider).status_code == 302
    assert client.get(f"/t/{other.slug}/tickets/{case}/case-file").status_code == 404
    assert client.get(f"/t/{tenant.slug}/tickets/{case}/case-file").status_code in (302, 403, 404)


def test_an_auditors_download_is_on_the_record(app, case, make_user):
    refund_desk, case = case
    tenant = refund_desk.tenant
    auditor = make_user(tenant, "auditor")
    response = staff_client(app, tenant, auditor).get(f"/t/{tenant.slug}/tickets/{case}/case-file")
    assert response.status_code == 200
    with acting_for(app, tenant) as session:
        exported = session.scalars(select(AuditEvent).where(AuditEvent.action == "export.created")).one()
    assert exported.actor_id == str(auditor.id) and exported.subject_type == "ticket"


def test_an_auditor_limited_to_the_case_gets_its_whole_file(app, case, make_user, tmp_path):
    """The scope hides other tickets from the auditor, not the case's own customer,
    mail and policy events, nor the hashes its proofs need."""
    refund_desk, case = case
    tenant = refund_desk.tenant
    auditor = make_user(tenant, "auditor")
    with acting_for(app, tenant) as session:
        user = session.scalars(select(User).where(User.id == auditor.id)).one()
        user.scope_kind, user.scope_ticket_ids = "tickets", [tickets.ticket_by_number(case).id]
        session.commit()
    response = staff_client(app, tenant, auditor).get(f"/t/{tenant.slug}/tickets/{case}/case-file")
    assert response.status_code == 200
    bundle = tmp_path / "case.zip"
    bundle.write_bytes(response.data)
    checked = run_verifier(bundle, tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    with zipfile.ZipFile(bundle) as archive:
        actions = {json.loads(line)["event"]["action"] for line in archive.read("events.jsonl").splitlines()}
    assert {"policy.published", "customer.created", "email.queued", "ticket.created"} <= actions
