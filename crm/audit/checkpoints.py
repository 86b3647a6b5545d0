"""Signed checkpoints of a tenant's chain: its size, head and Merkle root at a time,
signed with the deployment's key, stored append-only and mailed to the tenant's
witnesses. After a checkpoint, cutting the chain's tail or rewriting it behind the
checkpoint is detectable by anyone holding the checkpoint (docs/audit-format.md)."""

import logging
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import select

from crm import jobs
from crm.audit import verifier
from crm.audit.chain import canonical_json, digest, format_instant
from crm.audit.models import AuditCheckpoint, AuditEvent
from crm.audit.proofs import ChainTree
from crm.audit.service import Actor, chain_head, record
from crm.audit.signing import current_key
from crm.columns import utcnow
from crm.extensions import db, insert_or_ignore
from crm.notify.models import Automatic
from tenants import Tenant, current_tenant, tenant_context

log = logging.getLogger(__name__)

CHECKPOINT_JOB_PREFIX = "ledgerdesk-audit-checkpoints-"
# Events that do not make a chain "moved" for the periodic checkpoint: a checkpoint's
# own event and the mail bookkeeping of sending it (else each would call for the next).
BOOKKEEPING = ("audit.checkpoint_written", "email.queued", "email.sent", "email.failed")


def document(checkpoint: AuditCheckpoint, tenant_slug: str) -> dict:
    """The checkpoint as it is signed, published and mailed: its fields and signature."""
    return {
        "head_hash": checkpoint.head_hash,
        "key_id": checkpoint.key_id,
        "root": checkpoint.root,
        "tenant": tenant_slug,
        "tenant_id": checkpoint.tenant_id,
        "time": format_instant(checkpoint.signed_at),
        "tree_size": checkpoint.tree_size,
        "signature": checkpoint.signature,
    }


def listed() -> list[AuditCheckpoint]:
    """The tenant's checkpoints, newest first."""
    return list(db.session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.tree_size.desc())))


def by_size(tree_size: int) -> AuditCheckpoint | None:
    return db.session.scalars(select(AuditCheckpoint).where(AuditCheckpoint.tree_size == tree_size)).first()


def latest() -> AuditCheckpoint | None:
    return db.session.scalars(
        select(AuditCheckpoint).order_by(AuditCheckpoint.tree_size.desc()).limit(1)
    ).first()


def _moved_since(checkpoint: AuditCheckpoint) -> bool:
    later = select(AuditEvent.seq).where(
        AuditEvent.seq > checkpoint.tree_size, AuditEvent.action.not_in(BOOKKEEPING)
    )
    return db.session.scalar(later.limit(1)) is not None


def write_checkpoint(*, actor: Actor, force: bool = False) -> tuple[AuditCheckpoint | None, bool]:
    """Sign the chain of the tenant in context as it stands: ``(checkpoint, written)``.
    Without ``force`` nothing is written unless events other than checkpoint and mail
    bookkeeping came since the last one; with it (an export), whenever the chain grew.
    The checkpoint's event and its witnesses' mail are written in the same transaction."""
    head = chain_head()
    if head is None or head.seq == 0:
        return None, False
    last = latest()
    if last is not None and (last.tree_size >= head.seq or not (force or _moved_since(last))):
        return last, False
    key, tenant, now = current_key(), current_tenant(), utcnow()
    fields = {
        "head_hash": head.hash,
        "key_id": key.key_id,
        "root": ChainTree(head.seq).root(),
        "tenant": tenant.slug,
        "tenant_id": tenant.id,
        "time": format_instant(now),
        "tree_size": head.seq,
    }
    row = {
        "tenant_id": tenant.id,
        "tree_size": head.seq,
        "head_hash": head.hash,
        "root": fields["root"],
        "signed_at": now,
        "key_id": key.key_id,
        "signature": key.sign(verifier.checkpoint_message(fields)),
    }
    if not insert_or_ignore(AuditCheckpoint, row):
        return by_size(head.seq), False  # another process signed the same size first
    checkpoint = by_size(head.seq)
    record(
        "audit.checkpoint_written",
        "audit_checkpoint",
        head.seq,
        actor=actor,
        data={"tree_size": head.seq, "root": fields["root"], "head_hash": head.hash, "key_id": key.key_id},
    )
    _mail_witnesses(checkpoint, tenant, actor)
    return checkpoint, True


def witnesses() -> list[str]:
    from crm.provisioning.service import tenant_settings

    return [line.strip() for line in (tenant_settings().audit_witnesses or "").splitlines() if line.strip()]


def set_witnesses(addresses: list[str], *, actor: Actor) -> None:
    """Replace the tenant's witness addresses (checked by the form); the event holds
    their digests, before and after."""
    from crm.provisioning.service import tenant_settings

    before = witnesses()
    if before == addresses:
        return
    tenant_settings().audit_witnesses = "\n".join(addresses)
    record(
        "audit.witnesses_changed",
        "tenant",
        current_tenant().id,
        actor=actor,
        data={"before_sha256": [digest(a) for a in before], "after_sha256": [digest(a) for a in addresses]},
    )


def _mail_witnesses(checkpoint: AuditCheckpoint, tenant, actor: Actor) -> None:
    from crm.notify.service import queue_email

    addresses = witnesses()
    if not addresses:
        return
    signed = canonical_json(document(checkpoint, tenant.slug)).decode()
    locale = tenant.locale or "zh_CN"
    with force_locale(locale):
        subject = _(
            "Audit checkpoint of %(tenant)s: %(n)d events", tenant=tenant.name, n=checkpoint.tree_size
        )
        body = "\n\n".join(
            (
                _(
                    "You are a witness of %(tenant)s's audit trail on Ledgerdesk. Keep this email: "
                    "the signed checkpoint below fixes the trail as it stood, so that any later "
                    "cut or rewrite of it can be shown.",
                    tenant=tenant.name,
                ),
                _("To check an export against it, save the last line as FILE and run:"),
                "python verify.py EXPORT --checkpoint FILE",
                signed,
            )
        )
    for address in addresses:
        queue_email(
            to=address,
            subject=subject,
            body=body,
            locale=locale,
            ticket_id=None,
            actor=actor,
            automatic=Automatic.GENERATED,
        )


# --- every few minutes, for every tenant ------------------------------------------------------


def checkpoint_all() -> dict[str, int]:
    """A checkpoint for every active tenant whose chain moved: tree size by tenant slug."""
    written = {}
    for tenant in db.session.scalars(select(Tenant).order_by(Tenant.id)).all():
        if not tenant.is_active:
            continue
        with tenant_context(tenant):
            try:
                checkpoint, new = write_checkpoint(actor=Actor.system())
                db.session.commit()
            except Exception:
                db.session.rollback()
                log.exception("audit checkpoint of %s failed", tenant.slug)
                continue
            if new:
                written[tenant.slug] = checkpoint.tree_size
    return written


def checkpoint_job() -> None:
    """The rq job: checkpoint every tenant whose chain moved, then book the next run."""
    try:
        checkpoint_all()
    finally:
        schedule_checkpoints()


def schedule_checkpoints(now: datetime | None = None) -> str | None:
    minutes = current_app.config.get("AUDIT_CHECKPOINT_MINUTES", 10)
    return jobs.book_next_minute(checkpoint_job, CHECKPOINT_JOB_PREFIX, now, every=minutes)


# --- checking stored checkpoints against the chain ----------------------------------------------


@dataclass(frozen=True)
class CheckpointReport:
    count: int
    problem: str | None = None
    tree_size: int | None = None
    time: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify_checkpoints() -> CheckpointReport:
    """Every stored checkpoint of the tenant in context, oldest first: signed by a
    published key, over a chain that still holds its size, with its head hash and the
    root recomputed from the events themselves (never from stored block roots); then a
    consistency proof from each to the next. Reports the first that does not hold."""
    checkpoints = list(db.session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.tree_size)))
    if not checkpoints:
        return CheckpointReport(0)
    slug, keys = current_tenant().slug, current_key().known()
    for checkpoint in checkpoints:
        fields = document(checkpoint, slug)
        problem = None
        if checkpoint.key_id not in keys:
            problem = f"signed by a key that is not published ({checkpoint.key_id})"
        elif not verifier.signature_holds(
            keys[checkpoint.key_id], verifier.checkpoint_message(fields), checkpoint.signature
        ):
            problem = "its signature does not hold"
        if problem:
            return CheckpointReport(0, problem, checkpoint.tree_size, fields["time"])
    wanted = {checkpoint.tree_size: checkpoint for checkpoint in checkpoints}
    largest = checkpoints[-1].tree_size
    hashes = (
        db.session.connection()
        .execute(
            select(AuditEvent.hash)
            .where(AuditEvent.tenant_id == current_tenant().id, AuditEvent.seq <= largest)
            .order_by(AuditEvent.seq)
            .execution_options(yield_per=5000)
        )
        .scalars()
    )
    try:
        count, problem = _walk_roots(hashes, wanted)
    finally:
        hashes.close()
    if problem is not None:
        return problem
    if count < largest:
        cut = next(checkpoint for checkpoint in checkpoints if checkpoint.tree_size > count)
        return CheckpointReport(
            0,
            f"it covers {cut.tree_size} events but the chain holds {count}: the chain was cut",
            cut.tree_size,
            format_instant(cut.signed_at),
        )
    problem = _check_consistency(checkpoints)
    if problem is not None:
        return problem
    return CheckpointReport(len(checkpoints))


def _check_consistency(checkpoints: list[AuditCheckpoint]) -> CheckpointReport | None:
    """An RFC 9162 consistency proof from each checkpoint to the next, built as bundles
    build theirs (``ChainTree``, from the stored block roots) and checked with the
    standalone verifier's ``consistent``. The roots were recomputed from the events
    already, so a proof that fails here means the stored block roots disagree with the
    chain: every proof a bundle carried would fail its reader's ``verify.py`` too."""
    if len(checkpoints) < 2:
        return None
    tree = ChainTree(checkpoints[-1].tree_size)
    for old, new in pairwise(checkpoints):
        proof = [bytes.fromhex(node) for node in tree.consistency_proof(old.tree_size, new.tree_size)]
        if not verifier.consistent(
            old.tree_size, new.tree_size, bytes.fromhex(old.root), bytes.fromhex(new.root), proof
        ):
            return CheckpointReport(
                0,
                f"no consistency proof leads from it to the checkpoint of tree size {new.tree_size}: "
                "the stored block roots (audit_merkle_blocks) disagree with the chain",
                old.tree_size,
                format_instant(old.signed_at),
            )
        tree.forget_before(new.tree_size)
    return None


def _walk_roots(hashes, wanted: dict[int, AuditCheckpoint]) -> tuple[int, CheckpointReport | None]:
    """Each checkpoint's root and head recomputed from the event hashes, in one pass."""
    stack: list = []
    count = 0
    for event_hash in hashes:
        count += 1
        verifier.push_leaf(stack, bytes.fromhex(event_hash))
        checkpoint = wanted.get(count)
        if checkpoint is not None and (
            verifier.stack_root(stack).hex() != checkpoint.root or checkpoint.head_hash != event_hash
        ):
            return count, CheckpointReport(
                0,
                "its root does not match the chain: the chain was rewritten after it",
                count,
                format_instant(checkpoint.signed_at),
            )
    return count, None
