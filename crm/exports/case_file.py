"""A case file: one ticket's whole story as a signed bundle an inspector verifies offline
(docs/audit-format.md, "Bundles"; docs/case-files.md for case.json and the timeline).

The export first signs a checkpoint of the chain as it stands, then writes the case,
the policy versions involved, the original attachments, the audit events about the
case with their inclusion proofs against that checkpoint, consistency proofs from
every earlier checkpoint, a readable timeline, and the verifier."""

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from flask import render_template
from flask_babel import force_locale
from sqlalchemy import or_, select

from crm.audit import checkpoints
from crm.audit.chain import format_instant
from crm.audit.models import AuditCheckpoint, AuditEvent
from crm.audit.proofs import ChainTree
from crm.audit.service import Actor, record
from crm.audit.signing import current_key
from crm.auth.models import User
from crm.columns import utcnow
from crm.exports import versions
from crm.exports.bundle import CASE_FILE, EVENT_COLUMNS, audit_rows, dumps, event_document, zip_at
from crm.extensions import db
from crm.files.models import Attachment
from crm.money import format_money
from crm.refunds.models import Escalation, Payout, RefundDecision
from crm.sla.explain import explain
from crm.sla.models import Clock
from crm.tickets.labels import STATUS_LABELS
from crm.tickets.models import ThreadEntry, Ticket
from tenants import current_tenant


@dataclass(frozen=True)
class CaseFile:
    path: Path
    files: int
    events: int
    checkpoint: AuditCheckpoint


def _plain(value):
    if isinstance(value, datetime):
        return format_instant(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def _columns(row, names: tuple[str, ...]) -> dict:
    return {name: _plain(getattr(row, name)) for name in names}


TICKET_FIELDS = (
    "reference", "number", "kind", "channel", "status", "priority", "reason", "currency", "amount_minor",
    "purchase_date", "created_at", "received_at", "resolved_at", "policy_version_id", "merged_into_id",
)  # fmt: skip
REQUESTER_FIELDS = ("requester_name", "requester_phone", "requester_email", "requester_locale", "account_ref")
ENTRY_FIELDS = ("id", "kind", "author_kind", "author_user_id", "body", "details", "created_at")
CLOCK_FIELDS = (
    "id", "metric", "state", "unit", "target", "rule", "config_version_id", "calendar_version_id",
    "started_at", "due_at", "warned_at", "breached_at", "met_at", "stopped_at", "pauses",
)  # fmt: skip
DECISION_FIELDS = (
    "id", "policy_version_id", "version_reason", "outcome", "reason_code", "clause", "currency", "paid_minor",
    "amount_minor", "suggested_minor", "calculation", "differs_reason", "note", "status", "proposed_by_id",
    "proposed_at", "decided_by_id", "decided_at", "decision_note", "final_response_at",
)  # fmt: skip
PAYOUT_FIELDS = (
    "id",
    "decision_id",
    "amount_minor",
    "method",
    "reference",
    "paid_at",
    "receipt_id",
    "recorded_at",
)
ESCALATION_FIELDS = ("id", "body", "case_number", "received_on", "deadline_on", "clock_id", "created_at")


def case_document(ticket: Ticket) -> tuple[dict, list[Attachment]]:
    """case.json's content, and the ticket's attachments."""
    [(_, document, attachments)] = case_documents([ticket])
    return document, attachments


def _by_ticket(model, tickets_by_id: dict, column) -> dict[int, list]:
    """The rows of ``model`` belonging to the given tickets, grouped by ticket id."""
    grouped: dict[int, list] = {}
    for row in db.session.scalars(select(model).where(column.in_(tickets_by_id)).order_by(model.id)):
        grouped.setdefault(getattr(row, column.key), []).append(row)
    return grouped


def _clock(clock: Clock, locale: str) -> dict:
    """A clock's figures, and the sentence the ticket page gives for its due time, in the
    tenant's language."""
    with force_locale(locale):
        view = explain(clock)
        return {
            **_columns(clock, CLOCK_FIELDS),
            "label": view.label,
            "standing": view.standing,
            "explanation": [str(reason) for reason in view.reasons],
        }


def _attachment(attachment: Attachment) -> dict:
    return {
        "sha256": attachment.sha256,
        "size": attachment.size,
        "content_type": attachment.content_type,
        "filename": attachment.filename,
        "path": f"attachments/{attachment.sha256}",
    }


def case_documents(batch: list[Ticket]):
    """``(ticket, document, attachments)`` for each ticket, reading each kind of row
    once for the whole batch (a tenant export goes through every ticket)."""
    by_id = {ticket.id: ticket for ticket in batch}
    entries = _by_ticket(ThreadEntry, by_id, ThreadEntry.ticket_id)
    attachments = _by_ticket(Attachment, by_id, Attachment.ticket_id)
    clocks: dict[int, list] = {}
    for clock in db.session.scalars(
        select(Clock).where(Clock.subject_type == "ticket", Clock.subject_id.in_(by_id)).order_by(Clock.id)
    ):
        clocks.setdefault(clock.subject_id, []).append(clock)
    decisions = _by_ticket(RefundDecision, by_id, RefundDecision.ticket_id)
    payouts = _by_ticket(Payout, by_id, Payout.ticket_id)
    escalations = _by_ticket(Escalation, by_id, Escalation.ticket_id)
    statuses: dict[int, list[dict]] = {}
    for event in audit_rows(
        AuditEvent.seq,
        AuditEvent.subject_id,
        AuditEvent.data,
        AuditEvent.occurred_at,
        AuditEvent.actor_label,
        where=(
            AuditEvent.action == "ticket.status_changed",
            AuditEvent.subject_type == "ticket",
            AuditEvent.subject_id.in_([str(ticket_id) for ticket_id in by_id]),
        ),
    ):
        statuses.setdefault(int(event.subject_id), []).append(
            {
                "from": event.data.get("before"),
                "to": event.data.get("after"),
                "at": format_instant(event.occurred_at),
                "by": event.actor_label,
                "event_seq": event.seq,
            }
        )
    staff_ids = {entry.author_user_id for rows in entries.values() for entry in rows if entry.author_user_id}
    staff = {user.id: user for user in db.session.scalars(select(User).where(User.id.in_(staff_ids)))}
    tenant = current_tenant()
    locale = tenant.locale or "zh_CN"
    for ticket in batch:
        files: dict[int, list[dict]] = {}
        for attachment in attachments.get(ticket.id, []):
            files.setdefault(attachment.entry_id, []).append(_attachment(attachment))
        thread = []
        for entry in entries.get(ticket.id, []):
            item = _columns(entry, ENTRY_FIELDS)
            author = staff.get(entry.author_user_id)
            item["author"] = f"{author.display_name} <{author.email}>" if author else None
            item["attachments"] = files.get(entry.id, [])
            thread.append(item)
        document = {
            "format": "ledgerdesk-case/1",
            "tenant": {"slug": tenant.slug, "name": tenant.name, "timezone": tenant.timezone},
            "ticket": _columns(ticket, TICKET_FIELDS),
            "requester": _columns(ticket, REQUESTER_FIELDS),
            "thread": thread,
            # From the audit trail: each change names the event that records it.
            "status_history": statuses.get(ticket.id, []),
            "clocks": [_clock(clock, locale) for clock in clocks.get(ticket.id, [])],
            "decisions": [_columns(row, DECISION_FIELDS) for row in decisions.get(ticket.id, [])],
            "payouts": [_columns(row, PAYOUT_FIELDS) for row in payouts.get(ticket.id, [])],
            "escalations": [_columns(row, ESCALATION_FIELDS) for row in escalations.get(ticket.id, [])],
        }
        yield ticket, document, attachments.get(ticket.id, [])


def case_events(ticket: Ticket, upto: int, policy_ids: set[int]):
    """The audit events about the case: the ticket (its thread, clocks, decisions and
    payouts are recorded on it), its customer's record, the mail sent about it, and the
    publication of the policy versions it involves."""
    return audit_rows(
        *EVENT_COLUMNS,
        where=(
            AuditEvent.seq <= upto,
            or_(
                (AuditEvent.subject_type == "ticket") & (AuditEvent.subject_id == str(ticket.id)),
                (AuditEvent.action == "policy.published")
                & AuditEvent.subject_id.in_([str(policy_id) for policy_id in policy_ids]),
                (AuditEvent.subject_type == "customer") & (AuditEvent.subject_id == str(ticket.customer_id)),
                (AuditEvent.subject_type == "email")
                & (AuditEvent.data["ticket_id"].as_integer() == ticket.id),
            ),
        ),
    ).all()


def write_case_file(ticket: Ticket, path: Path, *, actor: Actor) -> CaseFile:
    """Write the case file of ``ticket`` to ``path`` (nothing there until it is whole),
    and record the export. The caller commits."""
    checkpoint, _ = checkpoints.write_checkpoint(actor=actor, force=True)
    tree = ChainTree(checkpoint.tree_size)
    document, attachments = case_document(ticket)
    policy_ids = {ticket.policy_version_id, *(d["policy_version_id"] for d in document["decisions"])} - {None}
    rows = case_events(ticket, checkpoint.tree_size, policy_ids)
    earlier = db.session.scalars(
        select(AuditCheckpoint.tree_size).where(AuditCheckpoint.tree_size < checkpoint.tree_size)
    ).all()
    references, recorded = [], {}
    for row in rows:
        if row.action == "attachment.added" and row.data.get("sha256"):
            recorded.setdefault(row.data["sha256"], row.seq)
    policy_files = versions.policy_files(policy_ids)
    tenant = current_tenant()
    with zip_at(path) as writer:
        writer.add("case.json", dumps(document))
        writer.add("checkpoint.json", dumps(checkpoints.document(checkpoint, tenant.slug)))
        count = writer.add_lines(
            "events.jsonl",
            ({"event": event_document(row), "proof": tree.inclusion_proof(row.seq - 1)} for row in rows),
        )
        if earlier:
            writer.add_lines(
                "consistency.jsonl",
                ({"tree_size": size, "proof": tree.consistency_proof(size)} for size in earlier),
            )
        for sha256 in dict.fromkeys(attachment.sha256 for attachment in attachments):
            references.extend(writer.add_attachment(tenant.id, sha256, recorded))
        for file in policy_files:
            writer.add(file.path, file.content)
            if file.seq is not None and file.seq <= checkpoint.tree_size:
                references.append(file.reference)
        locale = tenant.locale or "zh_CN"
        with force_locale(locale):
            timeline = render_template(
                "exports/timeline.html",
                case=document,
                events=[event_document(row) for row in rows],
                lang="zh-Hans" if locale.startswith("zh") else "en",
                statuses={str(code): str(label) for code, label in STATUS_LABELS.items()},
                money=format_money,
            )
        writer.add("timeline.html", timeline.encode())
        manifest = writer.seal(
            current_key(),
            {
                "format": CASE_FILE,
                "subject": f"tenant {tenant.slug}, ticket {ticket.reference}",
                "tenant": tenant.slug,
                "created_at": format_instant(utcnow()),
                "checkpoint": checkpoints.document(checkpoint, tenant.slug),
                "references": references,
            },
        )
    record(
        "export.created",
        "ticket",
        ticket.id,
        actor=actor,
        data={
            "kind": "case_file",
            "files": len(manifest["files"]),
            "events": count,
            "tree_size": checkpoint.tree_size,
            "key_id": manifest["key_id"],
        },
    )
    return CaseFile(Path(path), len(manifest["files"]), count, checkpoint)
