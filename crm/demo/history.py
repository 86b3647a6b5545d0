"""Months of a desk's past for the demo, played through the real services: each step
(a request received, an answer, a decision, a payout, an outside body's conclusion, a
lead called) runs at the moment it happened, by ``crm.columns.simulated_time``. The
reports then have weeks of attainment, a return with every line filled, and a funnel.

The history is the same on every seed (a fixed random seed). Its events are written now,
so the audit trail shows both: each event's ``occurred_at`` is the simulated moment, and
its ``chained_at`` the real time it was chained.
"""

import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from crm.audit.service import Actor
from crm.auth.models import User
from crm.columns import simulated_time, utcnow
from crm.leads import consent, intake, pipeline
from crm.leads.models import Purpose, Source
from crm.refunds import service as refunds
from crm.tickets import service as tickets
from crm.tickets.models import Ticket
from crm.tickets.resolution import NO_REFUND_REQUESTED

WEEKS = 16
RANDOM_SEED = 20260801
NAMES = (
    "李娜",
    "王伟",
    "张敏",
    "刘洋",
    "陈静",
    "杨帆",
    "赵磊",
    "黄婷",
    "周杰",
    "吴昊",
    "Emma Li",
    "Daniel Wu",
)
REASONS = ("unused_balance", "service_not_as_described", "cancelled_contract", "duplicate_charge", "other")
COMPLAINTS = (
    "外呼线路频繁掉线，影响业务，要求赔偿。",
    "虚拟号码被停用前没有通知。",
    "客服承诺的回电一直没有回。",
    "The virtual number stopped working without notice.",
)
BODIES = ("platform_12315", "telecom_regulator", "consumer_association")
BODY_OUTCOMES = ("for_customer", "for_provider", "settled", "withdrawn")
LEAD_SOURCES = ("baidu", "wechat", "site", "expo")
LOST_REASONS = ("价格高于预算", "选择了其他供应商", "暂不需要")


@dataclass(order=True)
class _Step:
    at: datetime
    order: int
    run: Callable[[], None] = field(compare=False)


@dataclass
class _Player:
    """The steps of the history, run in time order; a step may book later ones."""

    zone: ZoneInfo
    agent: User
    manager: User
    rng: random.Random
    end: datetime
    steps: list[_Step] = field(default_factory=list)
    counter: itertools.count = field(default_factory=itertools.count)

    def at(self, when: datetime, run: Callable[[], None]) -> None:
        if when < self.end:  # what would happen after today is left undone: still open
            heapq.heappush(self.steps, _Step(when, next(self.counter), run))

    def play(self) -> None:
        while self.steps:
            step = heapq.heappop(self.steps)
            with simulated_time(step.at):
                step.run()

    def office_time(self, day: date) -> datetime:
        minute = self.rng.randrange(9 * 60, 17 * 60 + 30)
        return datetime.combine(day, time(minute // 60, minute % 60), self.zone)

    def later(self, start: datetime, low_hours: float, high_hours: float) -> datetime:
        return start + timedelta(hours=self.rng.uniform(low_hours, high_hours))


def seed_history(agent: User, manager: User, *, timezone: str, today: date) -> int:
    """Play ``WEEKS`` weeks before ``today`` on the tenant in context, up to an hour ago
    (what comes later is left undone: the last days' requests are still open); the
    caller commits. Returns the number of requests received."""
    zone = ZoneInfo(timezone)
    player = _Player(zone, agent, manager, random.Random(RANDOM_SEED), utcnow() - timedelta(hours=1))
    received = 0
    for offset in range(WEEKS * 7, 0, -1):
        day = today - timedelta(days=offset)
        if day.weekday() >= 5:
            continue
        for _ in range(player.rng.choice((1, 2, 2, 3))):
            player.at(player.office_time(day), _request(player, received))
            received += 1
        # Leads stop three days back: today's demo has its own, one of them overdue.
        if offset > 3 and player.rng.random() < 0.6:
            player.at(player.office_time(day), _lead(player, received))
    player.play()
    return received


def _customer(player: _Player, serial: int) -> tickets.CustomerDetails:
    name = player.rng.choice(NAMES)
    return tickets.CustomerDetails(
        name=name,
        phone=f"1350013{serial:04d}",
        locale="en" if name.isascii() else "zh_CN",
    )


def _request(player: _Player, serial: int) -> Callable[[], None]:
    """A refund request on the form (most), or a complaint staff logged from a call."""
    rng = player.rng
    is_refund = rng.random() < 0.7
    customer = _customer(player, serial)
    amount = rng.choice(("49.00", "99.00", "199.00", "300.00", "580.00"))
    reason = rng.choice(REASONS)
    complaint_text = rng.choice(COMPLAINTS)

    def receive() -> None:
        if is_refund:
            ticket = tickets.submit_refund_request(
                tickets.RefundRequest(
                    customer=customer,
                    reason=reason,
                    description="号码已停用，请退还剩余预存款。",
                    amount=amount,
                ),
                nonce=f"demo-history-{serial}",
                ip=None,
            ).ticket
        else:
            ticket = tickets.open_ticket(
                customer=customer,
                kind="complaint",
                channel="phone",
                priority=rng.choice(("normal", "normal", "high")),
                description=complaint_text,
                user=player.agent,
                ip=None,
            )
        _follow_up(player, ticket, is_refund, amount)

    return receive


def _follow_up(player: _Player, ticket: Ticket, is_refund: bool, amount: str) -> None:
    """Book what the desk did next: most answered within the day, some late."""
    rng, now = player.rng, ticket.receipt_time
    agent, manager = player.agent, player.manager
    answered = player.later(now, 0.3, 6) if rng.random() < 0.8 else player.later(now, 10, 40)

    def assign_and_answer() -> None:
        tickets.assign(ticket, agent.id, user=manager, ip=None)
        tickets.reply(ticket, "您好，我们已收到您的请求，正在核实。", user=agent, ip=None)

    player.at(answered, assign_and_answer)
    settled = player.later(answered, 20, 24 * rng.choice((2, 4, 9, 20, 70)))
    if is_refund:
        outcome = rng.choice(("approved_full", "approved_full", "approved_partial", "denied"))
        player.at(settled, lambda: _decide(player, ticket, outcome, amount))
    else:

        def resolve() -> None:
            tickets.resolve(
                ticket, "已为您处理，线路已恢复。", user=agent, ip=None, no_refund_reason=NO_REFUND_REQUESTED
            )

        player.at(settled, resolve)
    if rng.random() < 0.12:
        _escalate(player, ticket, player.later(answered, 24, 24 * 6))


def _decide(player: _Player, ticket: Ticket, outcome: str, amount: str) -> None:
    if not ticket.is_open:
        return
    granted = {"approved_full": amount, "approved_partial": f"{float(amount) / 2:.2f}", "denied": "0"}[
        outcome
    ]
    decision = refunds.propose(
        ticket,
        refunds.Proposal(
            version_number=1,
            outcome=outcome,
            reason_code="billing_error" if outcome != "denied" else "outside_policy",
            # As the agent types it, in the customer's language: the final response quotes it.
            clause=("第 {} 条" if ticket.requester_locale == "zh_CN" else "clause {}").format(
                3 if outcome != "denied" else 2
            ),
            amount=granted,
            inputs=refunds.Inputs(),
            differs_reason="按实际余额核定。",
        ),
        user=player.agent,
        ip=None,
    )
    if outcome != "denied" and decision.decided_at:
        paid_at = player.later(decision.decided_at, 24, 24 * player.rng.choice((2, 5, 12, 20)))

        def pay() -> None:
            refunds.record_payout(
                ticket,
                refunds.PayoutEntry(
                    amount=granted, method="alipay", reference=f"ALI-{ticket.number}", paid_at=paid_at
                ),
                user=player.agent,
                ip=None,
            )

        player.at(paid_at, pay)


def _escalate(player: _Player, ticket: Ticket, when: datetime) -> None:
    rng = player.rng
    body = rng.choice(BODIES)
    outcome = rng.choice(BODY_OUTCOMES)

    def refer() -> None:
        received_on = when.astimezone(player.zone).date()
        escalation = refunds.record_escalation(
            ticket,
            refunds.Referral(
                body, f"{body[:5].upper()}-{ticket.number}", received_on, received_on + timedelta(days=10)
            ),
            user=player.agent,
            ip=None,
        )
        concluded = player.later(when, 24 * 5, 24 * 30)

        def conclude() -> None:
            refunds.record_escalation_outcome(
                ticket,
                refunds.BodyDecision(escalation.id, outcome, concluded.astimezone(player.zone).date()),
                user=player.manager,
                ip=None,
            )

        player.at(concluded, conclude)

    if ticket.is_open:
        player.at(when, refer)


def _lead(player: _Player, serial: int) -> Callable[[], None]:
    rng = player.rng
    source = rng.choice(LEAD_SOURCES)
    fate = rng.choice(("won", "lost", "lost", "trial", "qualified", "contacted", "unreachable"))

    def receive() -> None:
        texts = consent.consent_texts("zh_CN")
        lead = intake.receive(
            intake.LeadDetails(
                name=rng.choice(NAMES), phone=f"1360013{serial:04d}", company="示例公司", utm_source=source
            ),
            source=Source.WEB_FORM,
            actor=Actor("anonymous", None, "trial-form"),
            ip=None,
            proofs=[(texts[Purpose.CONTACT], True, None)],
        ).lead
        actor = tickets.staff_actor(player.agent, None)
        called = player.later(lead.created_at, 0.5, 5 if rng.random() < 0.8 else 30)

        def call() -> None:
            if fate == "unreachable":
                for _attempt in range(5):
                    pipeline.log_call(lead, pipeline.CallLog("no_answer"), user=player.agent, actor=actor)
                return
            pipeline.log_call(
                lead, pipeline.CallLog("answered", duration_seconds=180), user=player.agent, actor=actor
            )

        def move_on() -> None:
            if fate == "contacted" or not lead.is_open:
                return
            pipeline.set_stage(lead, "qualified", user=player.agent, actor=actor)
            if fate == "lost":
                pipeline.set_stage(
                    lead, "lost", user=player.agent, actor=actor, lost_reason=rng.choice(LOST_REASONS)
                )
            elif fate in ("trial", "won"):
                starts = utcnow().astimezone(player.zone).date()
                pipeline.set_stage(
                    lead,
                    "trial",
                    user=player.agent,
                    actor=actor,
                    trial_starts_on=starts,
                    trial_ends_on=starts + timedelta(days=14),
                )
                if fate == "won":
                    player.at(
                        player.later(called, 24 * 10, 24 * 16),
                        lambda: pipeline.set_stage(lead, "won", user=player.agent, actor=actor),
                    )

        player.at(called, call)
        player.at(player.later(called, 24, 24 * 5), move_on)

    return receive
