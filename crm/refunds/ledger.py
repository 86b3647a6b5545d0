"""What a ticket's refund stands at: approved and paid so far. Read by the ticket service
(a ticket with money still owed cannot be closed) and by the refund service."""

from dataclasses import dataclass

from sqlalchemy import func, select

from crm.extensions import db
from crm.refunds.models import DecisionStatus, Payout, RefundDecision


@dataclass(frozen=True)
class Balance:
    decision: RefundDecision | None  # the latest decision, whatever its status
    approved_minor: int
    paid_minor: int

    @property
    def owed_minor(self) -> int:
        return max(0, self.approved_minor - self.paid_minor)


def latest_decision(ticket_id: int) -> RefundDecision | None:
    return db.session.scalars(
        select(RefundDecision)
        .where(RefundDecision.ticket_id == ticket_id)
        .order_by(RefundDecision.id.desc())
        .limit(1)
    ).one_or_none()


def balance(ticket_id: int) -> Balance:
    decision = latest_decision(ticket_id)
    approved = (
        decision.approved_amount_minor
        if decision is not None and decision.status == DecisionStatus.APPROVED
        else 0
    )
    paid = db.session.scalar(
        select(func.coalesce(func.sum(Payout.amount_minor), 0)).where(Payout.ticket_id == ticket_id)
    )
    return Balance(decision, approved, int(paid))
