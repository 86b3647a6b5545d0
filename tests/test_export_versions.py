"""Policy and configuration versions as bundle files: each file is the exact content
whose SHA-256 its version's audit event records, and only the tenant's own."""

import hashlib

from sqlalchemy import select

from crm.audit.models import AuditEvent
from crm.audit.verifier import resolve
from crm.exports import versions
from crm.policies import service as policies
from tests.conftest import acting_for
from tests.test_policies import published


def _recorded(session, file) -> str:
    data = session.scalar(select(AuditEvent.data).where(AuditEvent.seq == file.seq))
    return resolve(data, file.reference["pointer"])


def test_each_published_policy_file_hashes_to_what_its_event_records(app, make_tenant):
    tenant = make_tenant()
    first = published(app, tenant)
    second = published(app, tenant, texts={"en": "Refunds within 30 days.", "zh_CN": "30 天内可退款。"})
    with acting_for(app, tenant) as session:
        files = versions.policy_files()
        assert [file.path for file in files] == [f"policy/v{first}.json", f"policy/v{second}.json"]
        for file in files:
            digest = hashlib.sha256(file.content).hexdigest()
            assert digest == _recorded(session, file)
            assert digest == policies.require(int(file.path[8:-5])).sha256
        pinned = policies.require(second)
        [only] = versions.policy_files({pinned.id})
        assert only.path == f"policy/v{second}.json"


def test_each_configuration_file_hashes_to_what_its_event_records(app, make_tenant):
    tenant = make_tenant()
    with acting_for(app, tenant) as session:
        files = versions.config_files()
        # A new tenant's defaults: version 1 of its calendar, SLA policy and deadline rules.
        assert sorted(file.path.split("/")[1] for file in files) == ["calendar", "deadlines", "sla_policy"]
        for file in files:
            assert file.seq is not None
            assert hashlib.sha256(file.content).hexdigest() == _recorded(session, file)


def test_another_tenants_versions_are_not_exported(app, make_tenant):
    tenant, other = make_tenant(), make_tenant()
    published(app, other)
    published(app, other)
    with acting_for(app, tenant):
        assert versions.policy_files() == []
        assert len(versions.config_files()) == 3
