"""Refund decisions, their second approval, the final response, payouts and outside
escalations: the only code that changes them. Each step queues its audit event, with the
policy version's id and hash where one applies; the caller commits.

- The applicable policy version is the one in force on the purchase date (at the start of
  that day in the tenant's zone) if the customer gave one and a version was in force then;
  otherwise the one the ticket was received under. Another version needs a written reason.
- A decision needs a second person with the manager role when it approves more than the
  tenant's threshold, or denies a ticket that was escalated outside; the ticket waits in
  ``pending_approval`` meanwhile. Otherwise it is final at once.
- A final decision is told to the customer in a final response (thread and email, in
  their language), which resolves the ticket; an approved refund then has a payout clock
  of the policy's ``payout_days`` calendar days.
"""

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import render_template
from flask_babel import force_locale, format_date
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from crm.access import Role
from crm.audit.chain import digest, format_instant
from crm.audit.service import Actor, record
from crm.auth.models import User
from crm.columns import utcnow
from crm.errors import Conflict, DomainError, NotFound
from crm.extensions import db
from crm.money import format_money
from crm.notify import staff as staff_notices
from crm.policies import service as policies
from crm.policies.models import PolicyVersion
from crm.provisioning.service import tenant_settings
from crm.refunds import ledger
from crm.refunds.calculator import Calculation, Usage, suggest
from crm.refunds.labels import METHOD_LABELS, OUTCOME_LABELS, default_outside_options, reason_choices
from crm.refunds.models import (
    DecisionStatus,
    Escalation,
    EscalationOutcome,
    Outcome,
    OutsideBody,
    Payout,
    RefundDecision,
)
from crm.sla import clocks, versions
from crm.sla.models import ConfigKind, Metric, Unit
from crm.templating import local_time
from crm.tickets import resolution
from crm.tickets import service as tickets
from crm.tickets.links import external_url
from crm.tickets.models import Status, Ticket
from crm.tickets.thread import via
from tenants import current_tenant

MAX_TEXT = 5000
PAYOUT_METHODS = tuple(METHOD_LABELS)


# --- which policy, and what it suggests ---------------------------------------------------


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time(0), ZoneInfo(current_tenant().timezone)).astimezone(UTC)


def applicable_version(ticket: Ticket) -> PolicyVersion | None:
    if ticket.purchase_date is not None:
        version = policies.in_force(_start_of(ticket.purchase_date))
        if version is not None:
            return version
    return policies.version_by_id(ticket.policy_version_id)


@dataclass(frozen=True)
class Inputs:
    """What the agent enters to compute and record a decision."""

    paid: str | None = None
    cancellation_date: date | None = None
    service_days_total: int | None = None
    service_days_used: int | None = None
    balance_used: str | None = None


def _usage(ticket: Ticket, inputs: Inputs) -> tuple[int, Usage]:
    paid_minor = tickets.to_minor_units(inputs.paid, ticket.currency) if inputs.paid else ticket.amount_minor
    if paid_minor is None:
        raise DomainError(_l("Enter the amount the customer paid."), "paid")
    balance_used = (
        tickets.to_minor_units(inputs.balance_used, ticket.currency) if inputs.balance_used else None
    )
    usage = Usage(inputs.service_days_total, inputs.service_days_used, balance_used)
    return paid_minor, usage


def calculate(ticket: Ticket, version: PolicyVersion, inputs: Inputs) -> Calculation:
    paid_minor, usage = _usage(ticket, inputs)
    return suggest(
        policies.terms_of(version),
        paid_minor=paid_minor,
        currency=ticket.currency,
        purchase_date=ticket.purchase_date,
        cancellation_date=inputs.cancellation_date,
        usage=usage,
        reason=ticket.reason,
    )


def received_on(ticket: Ticket) -> date:
    """The day the request came in, in the tenant's zone: the customer's notice of
    cancellation unless the agent knows an earlier one."""
    return ticket.created_at.astimezone(ZoneInfo(current_tenant().timezone)).date()


# --- proposing, approving, rejecting -------------------------------------------------------


@dataclass(frozen=True)
class Proposal:
    version_number: int
    outcome: str
    reason_code: str
    clause: str
    amount: str
    inputs: Inputs
    version_reason: str = ""
    differs_reason: str = ""
    note: str = ""


def _policy_data(version: PolicyVersion) -> dict:
    return {"policy_version_id": version.id, "policy_number": version.number, "policy_sha256": version.sha256}


# Why a decision waits for a second person, a manager.
THRESHOLD, ESCALATED_DENIAL, MANAGER_REVIEW = "threshold", "escalated_denial", "manager_review"


def _over_threshold(ticket: Ticket, amount_minor: int) -> bool:
    """Above the tenant's threshold, which is in its own currency. An amount in another
    currency has no rate to compare by here, so any approval of one needs a manager."""
    if ticket.currency != current_tenant().currency:
        return amount_minor > 0
    return amount_minor > tenant_settings().approval_threshold_minor


def approval_needed(ticket: Ticket, outcome: str, amount_minor: int, user: User) -> tuple[str, ...]:
    """Why ``user``'s decision must wait for a manager's approval (empty: final at once):
    it approves more than the tenant's threshold, denies a ticket escalated outside, or
    answers a customer who asked for a manager's review (after "not satisfied") and
    ``user`` is not a manager who took no part in the previous answer."""
    why = []
    if outcome == Outcome.DENIED and ticket.escalated:
        why.append(ESCALATED_DENIAL)
    if outcome != Outcome.DENIED and _over_threshold(ticket, amount_minor):
        why.append(THRESHOLD)
    if ticket.needs_manager and not resolution.is_reviewer(ticket, user):
        why.append(MANAGER_REVIEW)
    return tuple(why)


@dataclass(frozen=True)
class Checked:
    """A proposal that keeps every rule: its decision (not yet saved) and what it needs."""

    decision: RefundDecision
    version: PolicyVersion
    waits_for: tuple[str, ...]
    replaces: RefundDecision | None


def _check_version(ticket: Ticket, proposal: Proposal) -> tuple[PolicyVersion, str]:
    version = policies.by_number(proposal.version_number, published_only=True)
    if version is None:
        raise DomainError(_l("Choose a published policy version."), "version_number")
    applicable = applicable_version(ticket)
    version_reason = tickets.check_text(proposal.version_reason, "version_reason", MAX_TEXT, required=False)
    if applicable is not None and version.id != applicable.id and not version_reason:
        raise DomainError(
            _l(
                "Say why this request is judged under version %(n)d rather than %(m)d.",
                n=version.number,
                m=applicable.number,
            ),
            "version_reason",
        )
    return version, version_reason


def _check_amount(ticket: Ticket, outcome: Outcome, amount: str, paid_minor: int, already_paid: int) -> int:
    amount_minor = tickets.to_minor_units(amount, ticket.currency)
    amount_minor = 0 if amount_minor is None and outcome == Outcome.DENIED else amount_minor
    if amount_minor is None:
        raise DomainError(_l("Enter the amount to refund."), "amount")
    if amount_minor > paid_minor:
        raise DomainError(_l("The refund cannot be more than the amount paid."), "amount")
    if outcome == Outcome.DENIED and amount_minor != 0:
        raise DomainError(_l("A denial refunds nothing: the amount must be 0."), "amount")
    if outcome == Outcome.APPROVED_FULL and amount_minor != paid_minor:
        raise DomainError(_l("A full refund is the whole amount paid."), "amount")
    if outcome == Outcome.APPROVED_PARTIAL and not 0 < amount_minor < paid_minor:
        raise DomainError(_l("A partial refund is more than 0 and less than the amount paid."), "amount")
    if amount_minor < already_paid:  # a decision made before the ticket was reopened
        raise DomainError(
            _l(
                "%(paid)s has already been paid out on this ticket: a new decision cannot refund less.",
                paid=format_money(already_paid, ticket.currency),
            ),
            "amount",
        )
    return amount_minor


def check_proposal(ticket: Ticket, proposal: Proposal, *, user: User) -> Checked:
    """The decision ``proposal`` makes, checked against every rule; nothing is written."""
    if ticket.status == Status.PENDING_APPROVAL:
        raise Conflict(_l("A decision on this ticket is already waiting for approval."), "outcome")
    if not ticket.is_open:
        raise Conflict(_l("Reopen the ticket before deciding on it."), "outcome")
    version, version_reason = _check_version(ticket, proposal)
    try:
        outcome = Outcome(proposal.outcome)
    except ValueError:
        raise DomainError(_l("Choose the outcome."), "outcome") from None
    if proposal.reason_code not in dict(reason_choices()):
        raise DomainError(_l("Choose a reason from the list."), "reason_code")
    clause = tickets.check_text(proposal.clause, "clause", 200, required=True)
    calculation = calculate(ticket, version, proposal.inputs)
    paid_minor = _usage(ticket, proposal.inputs)[0]
    standing = ledger.balance(ticket.id)
    amount_minor = _check_amount(ticket, outcome, proposal.amount, paid_minor, standing.paid_minor)
    differs_reason = tickets.check_text(proposal.differs_reason, "differs_reason", MAX_TEXT, required=False)
    if amount_minor != calculation.suggested_minor and not differs_reason:
        raise DomainError(_l("The amount differs from the suggested refund: say why."), "differs_reason")
    note = tickets.check_text(proposal.note, "note", MAX_TEXT, required=False)
    waits_for = approval_needed(ticket, outcome, amount_minor, user)
    decision = RefundDecision(
        ticket_id=ticket.id,
        policy_version_id=version.id,
        version_reason=version_reason or None,
        outcome=outcome,
        reason_code=proposal.reason_code,
        clause=clause,
        currency=ticket.currency,
        paid_minor=paid_minor,
        amount_minor=amount_minor,
        suggested_minor=calculation.suggested_minor,
        calculation={
            "inputs": {
                "paid_minor": paid_minor,
                "purchase_date": ticket.purchase_date.isoformat() if ticket.purchase_date else None,
                "cancellation_date": proposal.inputs.cancellation_date.isoformat()
                if proposal.inputs.cancellation_date
                else None,
                "service_days_total": proposal.inputs.service_days_total,
                "service_days_used": proposal.inputs.service_days_used,
                "balance_used": proposal.inputs.balance_used,
                "reason": ticket.reason,
            },
            "lines": [[line.text, line.amount_minor, line.total_minor] for line in calculation.lines],
        },
        differs_reason=differs_reason or None,
        note=note,
        status=DecisionStatus.PENDING_APPROVAL if waits_for else DecisionStatus.APPROVED,
        proposed_by_id=user.id,
    )
    return Checked(decision, version, waits_for, standing.decision)


@dataclass(frozen=True)
class DecisionPreview:
    """What recording ``decision`` will do: wait for a manager (and why), or send the
    customer ``outgoing``."""

    decision: RefundDecision  # not saved
    waits_for: tuple[str, ...]
    outgoing: resolution.Outgoing | None

    @property
    def sha256(self) -> str:
        """The digest of what the preview shows: the decision, and what the customer gets."""
        decision = self.decision
        shown = [
            list(self.waits_for),
            decision.policy_version_id,
            decision.outcome,
            decision.amount_minor,
            decision.reason_code,
            decision.clause,
            self.outgoing.sha256 if self.outgoing else None,
        ]
        return digest(json.dumps(shown))


def _preview_of(ticket: Ticket, checked: Checked, user: User) -> DecisionPreview:
    if checked.waits_for:
        return DecisionPreview(checked.decision, checked.waits_for, None)
    return DecisionPreview(
        checked.decision, (), _final_outgoing(ticket, checked.decision, checked.version, user)
    )


def _final_outgoing(
    ticket: Ticket, decision: RefundDecision, version: PolicyVersion, user: User
) -> resolution.Outgoing:
    """The final response ``decision`` would send if ``user`` made it final now. The
    decision itself is left as it is (a copy is made final)."""
    final = RefundDecision(
        **{
            column.key: getattr(decision, column.key)
            for column in RefundDecision.__table__.columns
            if column.key not in ("id", "tenant_id")
        }
    )
    final.status, final.decided_by_id, final.decided_at = DecisionStatus.APPROVED, user.id, utcnow()
    return resolution.outgoing(ticket, "final_response", final_response_text(ticket, final, version))


def preview_decision(ticket: Ticket, proposal: Proposal, *, user: User) -> DecisionPreview:
    """What ``propose`` would do with ``proposal``, checked the same way; nothing is written."""
    return _preview_of(ticket, check_proposal(ticket, proposal, user=user), user)


def _check_previewed(previewed_sha256: str | None, preview: DecisionPreview | resolution.Outgoing) -> None:
    if previewed_sha256 is not None and previewed_sha256 != preview.sha256:
        raise Conflict(
            _l("What the customer would receive has changed since the preview: check it again."), "decision"
        )


def propose(
    ticket: Ticket, proposal: Proposal, *, user: User, ip: str | None, previewed_sha256: str | None = None
) -> RefundDecision:
    """Record the decision. It is final at once (and told to the customer), or waits for a
    manager. With ``previewed_sha256``, only if it does what that preview showed."""
    checked = check_proposal(ticket, proposal, user=user)
    _check_previewed(previewed_sha256, _preview_of(ticket, checked, user))
    decision, version, waits = checked.decision, checked.version, bool(checked.waits_for)
    db.session.add(decision)
    db.session.flush()
    actor = tickets.staff_actor(user, ip)
    record(
        "refund.decision_proposed",
        "ticket",
        ticket.id,
        actor=actor,
        data={
            "decision_id": decision.id,
            "outcome": decision.outcome,
            "reason_code": decision.reason_code,
            "clause": decision.clause,
            "amount_minor": decision.amount_minor,
            "suggested_minor": decision.suggested_minor,
            "paid_minor": decision.paid_minor,
            "currency": decision.currency,
            "needs_approval": waits,
            "approval_because": list(checked.waits_for),
            "replaces_decision_id": checked.replaces.id if checked.replaces else None,
            # What an inspector needs to recompute the amount: the calculator's inputs
            # and lines; the texts people wrote, as digests.
            "calculation": decision.calculation,
            "note_sha256": digest(decision.note or ""),
            "differs_reason_sha256": digest(decision.differs_reason) if decision.differs_reason else None,
            "version_reason_sha256": digest(decision.version_reason) if decision.version_reason else None,
            **_policy_data(version),
        },
    )
    if waits:
        tickets.change_status(ticket, Status.PENDING_APPROVAL, actor=actor, user=user)
        waiting = staff_notices.TicketEvent.NEEDS_APPROVAL
        staff_notices.tell(ticket, waiting, approvers(ticket, decision), to="managers")
    else:
        decision.decided_by_id, decision.decided_at = user.id, utcnow()
        _finalise(ticket, decision, version, user=user, ip=ip)
    return decision


def _pending(ticket: Ticket) -> RefundDecision:
    decision = ledger.latest_decision(ticket.id)
    if decision is None or decision.status != DecisionStatus.PENDING_APPROVAL:
        raise Conflict(_l("No decision on this ticket is waiting for approval."), "decision")
    return decision


def _second_person(decision: RefundDecision, user: User) -> None:
    if user.role != Role.MANAGER:
        raise DomainError(_l("Only a manager can approve or reject a refund decision."), "decision")
    if decision.proposed_by_id == user.id:
        raise Conflict(_l("A decision needs a second person: you proposed this one."), "decision")


def _check_approver(ticket: Ticket, decision: RefundDecision, user: User) -> None:
    _second_person(decision, user)
    if ticket.needs_manager and not resolution.is_reviewer(ticket, user):
        raise Conflict(
            _l(
                "The customer asked for a manager's review: it must come from a manager who took no "
                "part in the previous answer."
            ),
            "decision",
        )


def may_approve(ticket: Ticket, decision: RefundDecision | None, user: User) -> bool:
    """Whether the page offers ``user`` the approval of the decision waiting."""
    if decision is None or decision.status != DecisionStatus.PENDING_APPROVAL:
        return False
    try:
        _check_approver(ticket, decision, user)
    except DomainError:
        return False
    return True


def approvers(ticket: Ticket, decision: RefundDecision) -> list[User]:
    """Whom a decision waiting for approval is for: the managers who may approve it (or,
    should none of them, every manager and admin but its author, so it is not left unseen)."""
    managers = [manager for manager in staff_notices.managers() if manager.id != decision.proposed_by_id]
    return [manager for manager in managers if may_approve(ticket, decision, manager)] or managers


def preview_approval(ticket: Ticket, *, user: User) -> resolution.Outgoing:
    """The final response approving the waiting decision would send; nothing is written."""
    decision = _pending(ticket)
    _check_approver(ticket, decision, user)
    return _final_outgoing(ticket, decision, policies.version_by_id(decision.policy_version_id), user)


def approve(
    ticket: Ticket, *, user: User, ip: str | None, note: str = "", previewed_sha256: str | None = None
) -> RefundDecision:
    decision = _pending(ticket)
    _check_approver(ticket, decision, user)
    version = policies.version_by_id(decision.policy_version_id)
    _check_previewed(previewed_sha256, _final_outgoing(ticket, decision, version, user))
    decision.status = DecisionStatus.APPROVED
    decision.decided_by_id, decision.decided_at = user.id, utcnow()
    decision.decision_note = tickets.check_text(note, "note", MAX_TEXT, required=False) or None
    record(
        "refund.decision_approved",
        "ticket",
        ticket.id,
        actor=tickets.staff_actor(user, ip),
        data={
            "decision_id": decision.id,
            "proposed_by": decision.proposed_by_id,
            "note_sha256": digest(decision.decision_note) if decision.decision_note else None,
            **_policy_data(version),
        },
    )
    _finalise(ticket, decision, version, user=user, ip=ip)
    return decision


def reject(ticket: Ticket, note: str, *, user: User, ip: str | None) -> RefundDecision:
    """The second person sends the decision back to the agent, saying why."""
    decision = _pending(ticket)
    _second_person(decision, user)
    decision.status = DecisionStatus.REJECTED
    decision.decided_by_id, decision.decided_at = user.id, utcnow()
    decision.decision_note = tickets.check_text(note, "note", MAX_TEXT, required=True)
    actor = tickets.staff_actor(user, ip)
    version = policies.version_by_id(decision.policy_version_id)
    record(
        "refund.decision_rejected",
        "ticket",
        ticket.id,
        actor=actor,
        data={
            "decision_id": decision.id,
            "note_sha256": digest(decision.decision_note),
            **_policy_data(version),
        },
    )
    tickets.change_status(ticket, Status.OPEN, actor=actor, user=user)
    return decision


# --- telling the customer ------------------------------------------------------------------


def payout_due(decision: RefundDecision, version: PolicyVersion) -> date:
    """The last day the money may be paid: ``payout_days`` calendar days after approval."""
    zone = ZoneInfo(current_tenant().timezone)
    return decision.decided_at.astimezone(zone).date() + timedelta(
        days=policies.terms_of(version).payout_days
    )


def outside_options(locale: str) -> str:
    settings = tenant_settings()
    custom = settings.outside_options_zh if locale.startswith("zh") else settings.outside_options_en
    return custom or default_outside_options()


def final_response_text(ticket: Ticket, decision: RefundDecision, version: PolicyVersion) -> str:
    locale = ticket.requester.locale
    with force_locale(locale):
        return render_template(
            "refunds/final_response.txt",
            ticket=ticket,
            decision=decision,
            version=version,
            outcome=OUTCOME_LABELS[Outcome(decision.outcome)],
            reason=dict(reason_choices()).get(decision.reason_code, decision.reason_code),
            amount=format_money(decision.amount_minor, decision.currency),
            payout_due=format_date(payout_due(decision, version), "long")
            if decision.approved_amount_minor
            else None,
            outside=outside_options(locale),
            policy_url=external_url("policies.published", number=version.number),
        ).strip()


def _finalise(
    ticket: Ticket, decision: RefundDecision, version: PolicyVersion, *, user: User, ip: str | None
) -> None:
    """Send the final response (thread and email), resolve, and start the payout clock."""
    body = final_response_text(ticket, decision, version)
    tickets.reply(ticket, body, user=user, ip=ip, template="final_response")
    decision.final_response_at = utcnow()
    actor = tickets.staff_actor(user, ip)
    record(
        "refund.final_response_sent",
        "ticket",
        ticket.id,
        actor=actor,
        data={"decision_id": decision.id, "body_sha256": digest(body), **_policy_data(version)},
    )
    tickets.resolve_after_final_response(ticket, actor=actor, user=user)
    # A decision made again after a reopen keeps the payout deadline already running:
    # deciding again never buys the provider more time to pay.
    payout_running = any(
        clock.metric == Metric.PAYOUT and clock.state in clocks.UNFINISHED
        for clock in clocks.clocks_of("ticket", ticket.id)
    )
    if ledger.balance(ticket.id).owed_minor and not payout_running:
        clock = clocks.start_clock(
            "ticket",
            ticket.id,
            Metric.PAYOUT,
            unit=Unit.CALENDAR_DAYS,
            target=policies.terms_of(version).payout_days,
            started_at=decision.decided_at,
            # Whole days end at midnight in the calendar's zone, the tenant's; without a
            # calendar the clock would count UTC days and end at 08:00 in Shanghai.
            calendar=versions.current(ConfigKind.CALENDAR),
            rule=f"policy-v{version.number}",
            warn_percent=clocks.REGULATORY_WARN_PERCENT,
        )
        clocks.started(ticket, [clock], actor=actor)


# --- payouts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PayoutEntry:
    amount: str
    method: str
    reference: str
    paid_at: datetime
    receipt: tickets.Upload | None = None


def record_payout(
    ticket: Ticket, entry: PayoutEntry, *, user: User | None, ip: str | None, actor: Actor | None = None
) -> Payout:
    """Money that went out for the approved refund, recorded by staff (with its receipt)
    or confirmed by billing through the API (``actor``, the key)."""
    balance = ledger.balance(ticket.id)
    decision = balance.decision
    if decision is None or decision.status != DecisionStatus.APPROVED:
        raise Conflict(_l("There is no approved refund to pay on this ticket."), "amount")
    if decision.outcome == Outcome.DENIED:
        raise Conflict(_l("The refund was denied: there is nothing to pay."), "amount")
    amount_minor = tickets.to_minor_units(entry.amount, decision.currency)
    if not amount_minor:
        raise DomainError(_l("Enter the amount paid."), "amount")
    if amount_minor > balance.owed_minor:
        raise DomainError(
            _l(
                "That is more than is still owed (%(owed)s).",
                owed=format_money(balance.owed_minor, decision.currency),
            ),
            "amount",
        )
    if entry.method not in PAYOUT_METHODS:
        raise DomainError(_l("Choose how it was paid."), "method")
    reference = tickets.check_text(entry.reference, "reference", 100, required=True)
    if entry.paid_at.tzinfo is None or entry.paid_at > utcnow() + timedelta(minutes=5):
        raise DomainError(_l("The payment time cannot be in the future."), "paid_at")
    # The form gives minutes: a payment in the minute of the approval is not before it.
    if entry.paid_at < decision.decided_at.replace(second=0, microsecond=0):
        raise DomainError(
            _l(
                "The payment time cannot be before the refund was approved (%(approved)s).",
                approved=local_time(decision.decided_at),
            ),
            "paid_at",
        )
    actor = actor or tickets.staff_actor(user, ip)
    payout = Payout(
        ticket_id=ticket.id,
        decision_id=decision.id,
        amount_minor=amount_minor,
        method=entry.method,
        reference=reference,
        paid_at=entry.paid_at,
        recorded_by_id=user.id if user else None,
    )
    uploads = [entry.receipt] if entry.receipt else []
    amount_text = format_money(amount_minor, decision.currency)
    entry_row, attached = tickets.add_event_entry(
        ticket,
        {"payout": amount_text, **via(actor)},
        user=user,
        actor=actor,
        # The line staff read in the thread (else the entry there is blank), in the
        # recorder's language as a note would be.
        body=" · ".join(
            (str(_l("Payout recorded.")), amount_text, str(METHOD_LABELS[entry.method]), reference)
        ),
        uploads=uploads,
    )
    payout.receipt_id = attached[0].id if attached else None
    db.session.add(payout)
    db.session.flush()
    paid_off = balance.paid_minor + amount_minor >= balance.approved_minor
    record(
        "refund.payout_recorded",
        "ticket",
        ticket.id,
        actor=actor,
        data={
            "payout_id": payout.id,
            "decision_id": decision.id,
            "amount_minor": amount_minor,
            "currency": decision.currency,
            "method": entry.method,
            "reference": reference,
            "paid_at": format_instant(entry.paid_at),
            "receipt_sha256": attached[0].sha256 if attached else None,
            "entry_id": entry_row.id,
            "paid_in_full": paid_off,
        },
    )
    if paid_off:
        clocks.meet("ticket", ticket.id, Metric.PAYOUT, actor=actor, at=entry.paid_at)
    return payout


# --- outside escalations --------------------------------------------------------------------


@dataclass(frozen=True)
class Referral:
    body: str
    case_number: str
    received_on: date | None
    deadline_on: date | None


def record_escalation(ticket: Ticket, referral: Referral, *, user: User, ip: str | None) -> Escalation:
    """The customer went to an outside body: its case, and its deadline as a clock."""
    try:
        body = OutsideBody(referral.body)
    except ValueError:
        raise DomainError(_l("Choose the body the customer went to."), "body") from None
    case_number = tickets.check_text(referral.case_number, "case_number", 100, required=True)
    if referral.received_on is None:
        raise DomainError(_l("Give the date the referral was received."), "received_on")
    if referral.deadline_on is None:
        raise DomainError(_l("Give the deadline the body set."), "deadline_on")
    if referral.deadline_on < referral.received_on:
        raise DomainError(_l("The deadline cannot be before the date received."), "deadline_on")
    if referral.received_on > utcnow().date() + timedelta(days=1):
        raise DomainError(_l("The date received cannot be in the future."), "received_on")
    actor = tickets.staff_actor(user, ip)
    clock = clocks.start_clock(
        "ticket",
        ticket.id,
        Metric.ESCALATION,
        unit=Unit.CALENDAR_DAYS,
        target=(referral.deadline_on - referral.received_on).days,
        started_at=_start_of(referral.received_on),
        calendar=versions.current(ConfigKind.CALENDAR),  # the tenant's days, as for payouts
        rule=body,
        warn_percent=clocks.REGULATORY_WARN_PERCENT,
    )
    escalation = Escalation(
        ticket_id=ticket.id,
        body=body,
        case_number=case_number,
        received_on=referral.received_on,
        deadline_on=referral.deadline_on,
        recorded_by_id=user.id,
    )
    db.session.add(escalation)
    db.session.flush()
    escalation.clock_id = clock.id
    ticket.escalated = True
    record(
        "refund.escalation_recorded",
        "ticket",
        ticket.id,
        actor=actor,
        data={
            "escalation_id": escalation.id,
            "body": body,
            "case_number": case_number,
            "received_on": referral.received_on.isoformat(),
            "deadline_on": referral.deadline_on.isoformat(),
        },
    )
    clocks.started(ticket, [clock], actor=actor)
    return escalation


@dataclass(frozen=True)
class BodyDecision:
    escalation_id: int
    outcome: str
    decided_on: date | None
    note: str = ""


def record_escalation_outcome(
    ticket: Ticket, decision: BodyDecision, *, user: User, ip: str | None
) -> Escalation:
    """What the outside body concluded, once; its deadline clock is left as it is (it
    ends with the ticket, like the regulatory ones)."""
    escalation = (
        db.session.get(Escalation, decision.escalation_id) if 0 < decision.escalation_id < 2**63 else None
    )
    if escalation is None or escalation.ticket_id != ticket.id:
        raise NotFound(_l("This ticket has no such escalation."), "escalation_id")
    if escalation.outcome is not None:
        raise Conflict(_l("This escalation's outcome is recorded already."), "outcome")
    try:
        outcome = EscalationOutcome(decision.outcome)
    except ValueError:
        raise DomainError(_l("Choose what the body concluded."), "outcome") from None
    if decision.decided_on is None:
        raise DomainError(_l("Give the day the body concluded."), "decided_on")
    if decision.decided_on < escalation.received_on:
        raise DomainError(_l("The body cannot conclude before the referral was received."), "decided_on")
    if decision.decided_on > utcnow().date() + timedelta(days=1):
        raise DomainError(_l("The day cannot be in the future."), "decided_on")
    note = tickets.check_text(decision.note, "note", 2000, required=False)
    escalation.outcome, escalation.outcome_on, escalation.outcome_note = outcome, decision.decided_on, note
    record(
        "refund.escalation_outcome",
        "ticket",
        ticket.id,
        actor=tickets.staff_actor(user, ip),
        data={
            "escalation_id": escalation.id,
            "body": escalation.body,
            "outcome": outcome,
            "decided_on": decision.decided_on.isoformat(),
            "note_sha256": digest(note) if note else None,
        },
    )
    return escalation


def escalations_of(ticket: Ticket) -> list[Escalation]:
    return list(
        db.session.scalars(
            select(Escalation).where(Escalation.ticket_id == ticket.id).order_by(Escalation.id)
        )
    )


def payouts_of(ticket: Ticket) -> list[Payout]:
    return list(db.session.scalars(select(Payout).where(Payout.ticket_id == ticket.id).order_by(Payout.id)))
