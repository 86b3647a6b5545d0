"""The whole-tenant export: a folder verify.py checks offline, holding only the
tenant's own data, written whole or not at all."""

import hashlib
import json
import subprocess

from sqlalchemy import select

from crm.audit.models import AuditEvent
from crm.files.storage import blob_path
from crm.tickets import service as tickets
from tests.conftest import acting_for, run_bundled_verifier, unique
from tests.test_case_file import SCHEMA_VALIDATOR
from tests.test_policies import published
from tests.test_portal import PNG
from tests.test_ticket_service import refund_request


def filed(app, tenant, name: str, content: bytes = PNG) -> None:
    request = refund_request(customer={"name": name}, uploads=[tickets.Upload("账单.png", content)])
    with acting_for(app, tenant) as session:
        tickets.submit_refund_request(request, nonce=unique("n"), ip=None)
        session.commit()


def export(runner, tenant, output):
    return runner.invoke(args=["export", "tenant", "--tenant", tenant.slug, "-o", str(output)])


def verify(folder, tmp_path) -> subprocess.CompletedProcess:
    return run_bundled_verifier(folder, tmp_path)


def test_a_tenant_export_verifies_offline_and_holds_only_the_tenant(app, runner, make_tenant, tmp_path):
    tenant, other = make_tenant(), make_tenant()
    published(app, tenant)
    filed(app, tenant, "王小明")
    filed(app, tenant, "李四")
    filed(app, other, "Other Tenant's Customer")
    output = tmp_path / "export"
    result = export(runner, tenant, output)
    assert result.exit_code == 0, result.output
    assert f"tenant export: {output}," in result.output and ", 2 cases," in result.output
    checked = verify(output, tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "OK: everything above holds" in checked.stdout

    cases = [json.loads(line) for line in (output / "cases.jsonl").read_text().splitlines()]
    assert sorted(case["requester"]["requester_name"] for case in cases) == ["李四", "王小明"]
    for case in cases:
        SCHEMA_VALIDATOR.validate(case)
    everything = "".join(path.read_text(errors="ignore") for path in output.rglob("*.json*"))
    assert "Other Tenant" not in everything
    events = [json.loads(line) for line in (output / "events.jsonl").read_text().splitlines()]
    assert {event["tenant_id"] for event in events} == {tenant.id}
    assert (output / "policy" / "v1.json").exists()
    assert sorted(path.name for path in (output / "config").iterdir()) == [
        "calendar",
        "deadlines",
        "sla_policy",
    ]
    with acting_for(app, tenant) as session:
        exported = session.scalars(select(AuditEvent).where(AuditEvent.action == "export.created")).one()
    assert exported.data["cases"] == 2 and exported.subject_type == "tenant"


def test_an_export_is_written_whole_or_not_at_all(app, runner, make_tenant, tmp_path):
    tenant = make_tenant()
    own = PNG + b"only this test's"
    filed(app, tenant, "王小明", own)
    with app.app_context():
        blob_path(tenant.id, hashlib.sha256(own).hexdigest()).unlink()  # lost from the disk
    output = tmp_path / "export"
    result = export(runner, tenant, output)
    assert result.exit_code != 0
    assert not output.exists() and not (tmp_path / "export.partial").exists()


def test_an_existing_folder_is_refused(runner, make_tenant, tmp_path):
    tenant = make_tenant()
    result = export(runner, tenant, tmp_path)
    assert result.exit_code == 2 and "already exists" in result.output
