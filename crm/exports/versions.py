"""Refund-policy versions and calendar, SLA-policy and deadline-rule versions as bundle
files: each file holds the exact bytes whose SHA-256 the version's audit event records,
so a verifier checks the file against the trail."""

import re
from dataclasses import dataclass

from sqlalchemy import select

from crm.audit.chain import canonical_text
from crm.audit.models import AuditEvent
from crm.exports.bundle import audit_rows
from crm.extensions import db
from crm.policies.models import PolicyVersion
from crm.sla.models import ConfigKind, ConfigVersion

CONFIG_ACTIONS = {f"{kind}.version_created": kind for kind in ConfigKind}


@dataclass(frozen=True)
class VersionFile:
    path: str
    content: bytes
    seq: int | None  # the event recording its digest (None if none was recorded)

    @property
    def reference(self) -> dict | None:
        return None if self.seq is None else {"path": self.path, "seq": self.seq, "pointer": "/sha256"}


def policy_file(version: PolicyVersion, seq: int | None) -> VersionFile:
    content = canonical_text({"texts": version.texts, "terms": version.terms}).encode()
    return VersionFile(f"policy/v{version.number}.json", content, seq)


def policy_files(version_ids: set[int] | None = None) -> list[VersionFile]:
    """Published policy versions (those given, or all), each with its ``policy.published`` event."""
    query = select(PolicyVersion).where(PolicyVersion.sha256.is_not(None)).order_by(PolicyVersion.number)
    if version_ids is not None:
        query = query.where(PolicyVersion.id.in_(version_ids))
    versions = list(db.session.scalars(query))
    published = dict(
        audit_rows(
            AuditEvent.subject_id,
            AuditEvent.seq,
            where=(
                AuditEvent.action == "policy.published",
                AuditEvent.subject_type == "policy_version",
                AuditEvent.subject_id.in_([str(version.id) for version in versions]),
            ),
        ).all()
    )
    return [policy_file(version, published.get(str(version.id))) for version in versions]


def config_files() -> list[VersionFile]:
    """Every calendar, SLA-policy and deadline-rule version with its creation event."""
    created = {}
    for seq, kind, key, data in audit_rows(
        AuditEvent.seq,
        AuditEvent.subject_type,
        AuditEvent.subject_id,
        AuditEvent.data,
        where=(AuditEvent.action.in_(CONFIG_ACTIONS),),
    ):
        created[(kind, key, data.get("version"))] = seq
    files = []
    for version in db.session.scalars(
        select(ConfigVersion).order_by(ConfigVersion.kind, ConfigVersion.key, ConfigVersion.version)
    ):
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", version.key)
        name = safe if safe == version.key else f"{safe}-{version.id}"
        files.append(
            VersionFile(
                f"config/{version.kind}/{name}-v{version.version}.json",
                canonical_text(version.body).encode(),
                created.get((version.kind, version.key, version.version)),
            )
        )
    return files
