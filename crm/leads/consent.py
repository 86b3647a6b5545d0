"""Consent to be called, and proof of it: the texts a tenant shows beside its boxes, the
proof each request leaves, what the do-not-contact list and the proofs together allow,
and the secret "stop contacting me" link every lead gets.

MIIT's rules on commercial calls: no call without the person's consent or request; one
who did not clearly consent counts as refusing; one who consented and then refuses must
not be called again; proof is kept at least five months (the tenant sets how long).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import select

from crm.audit.chain import digest
from crm.columns import utcnow
from crm.dnc import service as dnc
from crm.extensions import db
from crm.leads.models import Consent, Lead, Purpose
from crm.provisioning.service import tenant_settings
from tenants import current_tenant


@dataclass(frozen=True)
class ConsentText:
    purpose: Purpose
    text: str
    version: str

    @property
    def sha256(self) -> str:
        return digest(self.text)


def consent_texts(locale: str) -> dict[Purpose, ConsentText]:
    """The two boxes' wording as the form shows it in ``locale``: the tenant's own, or the
    desk's default, with the version stored beside each proof."""
    settings = tenant_settings()
    name = current_tenant().name
    version = str(settings.consent_text_version)
    with force_locale(locale):
        contact = settings.consent_contact_text or _(
            "%(company)s may call me, or email me, about this request.", company=name
        )
        marketing = settings.consent_marketing_text or _(
            "%(company)s may also tell me about later offers.", company=name
        )
    return {
        Purpose.CONTACT: ConsentText(Purpose.CONTACT, contact, version),
        Purpose.MARKETING: ConsentText(Purpose.MARKETING, marketing, version),
    }


def record_proof(
    lead: Lead,
    *,
    request_id: int | None,
    purpose: Purpose,
    given: bool,
    text: ConsentText | None,
    channel: str,
    ip: str | None,
    evidence_ref: str | None = None,
    at: datetime | None = None,
) -> Consent:
    """One box's proof, kept for the tenant's retention period from now. ``text`` is
    None for a consent given elsewhere (an import): its ``evidence_ref`` says where."""
    at = at or utcnow()
    shown = text.text if text else ""
    proof = Consent(
        lead_id=lead.id,
        lead_request_id=request_id,
        purpose=purpose,
        given=given,
        text=shown,
        text_version=text.version if text else "external",
        text_sha256=digest(shown),
        channel=channel,
        ip=ip,
        evidence_ref=evidence_ref,
        phone=lead.phone,
        email=lead.email,
        recorded_at=at,
        retain_until=at + timedelta(days=tenant_settings().consent_retention_days),
    )
    db.session.add(proof)
    return proof


def proof_summary(proof: Consent) -> dict:
    """What an audit event says of a proof: digests, not the person's details."""
    return {
        "consent_id": proof.id,
        "purpose": proof.purpose,
        "given": proof.given,
        "text_version": proof.text_version,
        "text_sha256": proof.text_sha256,
        "channel": proof.channel,
        "evidence_sha256": digest(proof.evidence_ref) if proof.evidence_ref else None,
    }


@dataclass(frozen=True)
class Permission:
    """What the desk may do with a lead now, and why, as the banner says it."""

    call: bool
    marketing: bool
    listed: bool
    listed_since: datetime | None
    reason: str  # why calls are refused ("" when allowed)


def permission(lead: Lead) -> Permission:
    """Calls need a consent on record later than any do-not-contact entry for the
    number or address: a person on the list who asks again (the form) has asked to be
    called about that request. Marketing needs the marketing box and no entry at all."""
    standing = dnc.standing(lead.phone, lead.email)
    consented = lead.contact_consent_at
    if consented is None:
        reason = _("No consent to be called is on record: record one before calling.")
    elif standing.listed and standing.since >= consented:
        reason = _("This number is on the do-not-contact list: it must not be called.")
    else:
        reason = ""
    return Permission(
        call=not reason,
        marketing=lead.marketing_consent and not standing.listed,
        listed=standing.listed,
        listed_since=standing.since,
        reason=reason,
    )


def proofs_of(lead: Lead) -> list[Consent]:
    """The consent proofs of the lead, oldest first."""
    return list(db.session.scalars(select(Consent).where(Consent.lead_id == lead.id).order_by(Consent.id)))


def withdraw_marketing(lead: Lead, at: datetime) -> None:
    """The person refused later offers: their marketing proofs are marked withdrawn."""
    lead.marketing_consent = False
    for proof in db.session.scalars(
        select(Consent).where(
            Consent.lead_id == lead.id, Consent.purpose == Purpose.MARKETING, Consent.withdrawn_at.is_(None)
        )
    ):
        proof.withdrawn_at = at


# --- the stop link ----------------------------------------------------------------------


def _stop_signer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.secret_key, salt="lead-stop-link")


def stop_token(lead: Lead) -> str:
    """The lead's "stop contacting me" token: signed, without expiry (a person may use
    it years later), and for this tenant only."""
    return _stop_signer().dumps([lead.tenant_id, lead.id])


def lead_id_of_stop_token(token: str) -> int | None:
    try:
        tenant_id, lead_id = _stop_signer().loads(token)
    except (BadSignature, TypeError, ValueError):
        return None
    if tenant_id != current_tenant().id or not isinstance(lead_id, int):
        return None
    return lead_id
