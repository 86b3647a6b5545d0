"""Importing leads and do-not-contact entries from CSV: from the CLI and from the page,
each row checked on its own, rejected rows listed, phones on open leads merged, rows
without consent not to be called; and another tenant's runs never seen."""

from io import BytesIO

import pytest
from sqlalchemy import select

from crm.audit.models import AuditEvent
from crm.dnc.models import DoNotContact
from crm.leads.consent import permission
from crm.leads.models import Consent, ImportRun, Lead
from tests.conftest import CSRF_RE, acting_for, login

LEADS_CSV = (
    "name,phone,email,company,source,consent\n"
    "张三,13700000001,zs@example.test,张氏,expo,yes:signed-form-1\n"
    "李四,13700000002,,,expo,\n"
    ",13700000003,,,expo,\n"
    "王五,not-a-phone,,,expo,\n"
    "赵六,+86 137 0000 0001,,,expo,\n"
    "钱七,13700000007,,,expo,maybe\n"
)


def leads_of(app, tenant) -> list[Lead]:
    with acting_for(app, tenant) as session:
        found = list(session.scalars(select(Lead).order_by(Lead.id)))
        session.expunge_all()
        return found


def test_the_cli_imports_row_by_row_and_prints_the_summary(app, runner, make_tenant, tmp_path):
    tenant = make_tenant()
    path = tmp_path / "leads.csv"
    path.write_text(LEADS_CSV, encoding="utf-8")
    result = runner.invoke(args=["leads", "import", "--tenant", tenant.slug, str(path)])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1] == "imported 2, merged 1, rejected 3"
    assert "row 4: name: This field is required." in lines
    assert "row 5: phone: Enter a valid phone number." in lines
    assert any(line.startswith("row 7: consent:") for line in lines)
    first, second = leads_of(app, tenant)
    assert (first.reference, first.source, first.source_detail) == ("LD-1001", "import", "expo")
    with acting_for(app, tenant) as session:
        proof = session.scalars(select(Consent)).one()
        assert (proof.evidence_ref, proof.channel) == ("signed-form-1", "import")
        first, second = session.scalars(select(Lead).order_by(Lead.id)).all()
        assert permission(first).call and not permission(second).call  # no consent: not to be called
        assert first.first_contact_due_at is None  # an import promises no call
        events = [
            e.action for e in session.scalars(select(AuditEvent).where(AuditEvent.subject_type == "lead"))
        ]
        assert events.count("lead.created") == 2 and events.count("lead.request_joined") == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("phone,email\n1,2\n", "The header must have the columns"),
        ("\x00\x01binary", "not a CSV"),
    ],
)
def test_a_file_that_is_not_the_expected_csv_imports_nothing(
    app, runner, make_tenant, tmp_path, content, message
):
    tenant = make_tenant()
    path = tmp_path / "x.csv"
    path.write_bytes(content.encode())
    result = runner.invoke(args=["leads", "import", "--tenant", tenant.slug, str(path)])
    assert result.exit_code != 0 and message in result.output
    assert leads_of(app, tenant) == []


def test_gb18030_from_excel_is_read(app, runner, make_tenant, tmp_path):
    tenant = make_tenant()
    path = tmp_path / "gbk.csv"
    path.write_bytes("name,phone,email,company,source,consent\n张三,13700000001,,,展会,\n".encode("gb18030"))
    result = runner.invoke(args=["leads", "import", "--tenant", tenant.slug, str(path)])
    assert result.output.strip().endswith("imported 1, merged 0, rejected 0")
    assert leads_of(app, tenant)[0].name == "张三"


def test_the_dnc_import_lists_numbers_and_addresses(app, runner, make_tenant, tmp_path):
    tenant = make_tenant()
    path = tmp_path / "dnc.csv"
    path.write_text(
        "phone,email,reason\n13900000001,,asked\n,x@example.test,bounced\n13900000001,,again\nbad,,x\n"
    )
    result = runner.invoke(args=["dnc", "import", "--tenant", tenant.slug, str(path)])
    assert (
        result.exit_code == 0 and result.output.strip().splitlines()[-1] == "imported 2, merged 1, rejected 1"
    )
    with acting_for(app, tenant) as session:
        values = {entry.value for entry in session.scalars(select(DoNotContact))}
        assert values == {"+8613900000001", "x@example.test"}


def test_a_manager_imports_from_the_page_and_sees_the_result(app, client, make_tenant, make_user):
    tenant, other = make_tenant(), make_tenant()
    manager = make_user(tenant, "manager")
    login(client, tenant, manager)
    url = f"/t/{tenant.slug}/leads/import"
    token = CSRF_RE.search(client.get(url).text).group(1)
    sent = client.post(
        url, data={"csrf_token": token, "kind": "leads", "file": (BytesIO(LEADS_CSV.encode()), "expo.csv")}
    )
    assert sent.status_code == 302
    page = client.get(url)  # without Redis the job ran in-process after the commit
    assert "Imported 2, merged 1, rejected 3." in page.text and "Row 4:" in page.text
    lying = client.post(
        url, data={"csrf_token": token, "kind": "leads", "file": (BytesIO(b"%PDF-1.4\x00"), "x.csv")}
    )
    assert lying.status_code == 422
    with acting_for(app, tenant) as session:
        run = session.scalars(select(ImportRun)).one()
        assert run.file_name is None  # the file is gone once imported
    outsider = app.test_client()
    login(outsider, other, make_user(other, "manager"))
    assert "expo.csv" not in outsider.get(f"/t/{other.slug}/leads/import").text


def test_agents_cannot_import(app, client, make_tenant, make_user):
    tenant = make_tenant()
    login(client, tenant, make_user(tenant, "agent"))
    assert client.get(f"/t/{tenant.slug}/leads/import").status_code == 403
