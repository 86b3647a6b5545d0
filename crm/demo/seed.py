"""Seeding the demo tenant through the same services the app uses, so the demo's own
audit trail is real. Safe to run again: what exists is left alone."""

from contextlib import suppress
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from crm.audit.service import Actor
from crm.auth import service as auth
from crm.auth.models import User
from crm.calls import service as calls
from crm.calls.models import CallRecord
from crm.columns import simulated_time, utcnow
from crm.demo import history
from crm.dnc import service as dnc
from crm.dnc.models import EntrySource
from crm.errors import DomainError
from crm.extensions import db
from crm.leads import consent, intake, pipeline
from crm.leads.models import Lead, Purpose, Source
from crm.policies import service as policies
from crm.provisioning import service as provisioning
from crm.refunds import service as refunds
from crm.sla import calendars, versions
from crm.sla.models import ConfigKind
from crm.sla.rules import DEFAULT_CALENDAR, DEFAULT_KEY
from crm.tickets import service as tickets
from crm.tickets.links import tracking_url
from crm.tickets.models import Ticket
from crm.tickets.resolution import NO_REFUND_REQUESTED
from tenants import Tenant, tenant_context

SLUG = "demo"
NAME = "Demo Telecom Ltd"
USERS = (
    ("admin@demo.test", "admin", "Ada Admin"),
    ("manager@demo.test", "manager", "Min Manager"),
    ("agent@demo.test", "agent", "Alex Agent"),
    ("auditor@demo.test", "auditor", "Audrey Auditor"),
)
EVIDENCE = (
    "充值记录 / Top-up record\n2026-09-01  ¥200.00  ref 88213\n2026-10-01  ¥200.00  ref 90114\n".encode()
)

# (name, phone, email, locale, reason, amount, description, what happens next)
REQUESTS = (
    (
        "王芳",
        "13800138001",
        "wangfang@example.test",
        "zh_CN",
        "unused_balance",
        "186.50",
        "我已于10月注销外呼账户，账户内剩余余额186.50元，申请退还。",
        "new",
    ),
    (
        "Li Wei",
        "13800138002",
        "liwei@example.test",
        "en",
        "duplicate_charge",
        "299.00",
        "I was charged twice for the October virtual number plan.",
        "open",
    ),
    (
        "张伟",
        "13800138003",
        "zhangwei@example.test",
        "zh_CN",
        "service_not_as_described",
        "1200.00",
        "销售承诺外呼接通率不低于60%，实际不到20%，要求退还套餐费用。",
        "awaiting_customer",
    ),
    (
        "陈静",
        "13800138004",
        None,
        "zh_CN",
        "cancelled_contract",
        "500.00",
        "合同已于9月解除，但仍被扣费500元。",
        "decided",
    ),
    (
        "Zhao Min",
        "13800138005",
        "zhaomin@example.test",
        "en",
        "unauthorized_charge",
        "88.00",
        "A value-added service I never ordered was billed.",
        "closed",
    ),
    (
        "刘洋",
        "13800138006",
        "liuyang@example.test",
        "zh_CN",
        "other",
        None,
        "想咨询退费流程，暂不需要处理。",
        "withdrawn",
    ),
    (
        "孙丽",
        "13800138007",
        "sunli@example.test",
        "zh_CN",
        "unused_balance",
        "350.00",
        "退款金额不对，应退350元，只退了200元。",
        "not_satisfied",
    ),
)

# How long the late complaint waited unnoticed: past the telecom regulator's 15 days.
LATE_LETTER_DAYS = 25

POLICY_EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "refund-policy.json"


@dataclass(frozen=True)
class SeedResult:
    tenant: Tenant
    created: list[str]
    # Reference -> its tracking page, for each ticket that has one; a ticket staff opened
    # for a call or a letter has none (its customer gets a link only in an email).
    tracking_links: dict[str, str] = field(default_factory=dict)
    # Reference -> why it has no tracking page, for the others.
    without_links: dict[str, str] = field(default_factory=dict)


def seed_demo(password: str, slug: str = SLUG) -> SeedResult:
    """Create the demo tenant (``slug``), its four users and a desk of tickets if
    missing; the caller commits."""
    actor = Actor.operator("demo-seed")
    created: list[str] = []
    tenant = provisioning.tenant_by_slug(slug)
    if tenant is None:
        tenant = provisioning.create_tenant(
            slug=slug, name=NAME, timezone="Asia/Shanghai", currency="CNY", actor=actor
        )
        created.append(f"tenant {slug}")
    links: dict[str, str] = {}
    unlinked: dict[str, str] = {}
    with tenant_context(tenant):
        for email, role, name in USERS:
            if auth.user_by_email(email) is None:
                auth.create_user(email=email, role=role, password=password, display_name=name, actor=actor)
                created.append(email)
        db.session.flush()
        fresh_leads = not db.session.scalar(select(func.count()).select_from(Lead))
        if not db.session.scalar(select(func.count()).select_from(Ticket)):
            today = utcnow().astimezone(ZoneInfo(tenant.timezone)).date()
            with simulated_time(utcnow() - timedelta(weeks=history.WEEKS, days=1)):
                _seed_sla(actor)
                _seed_policy(actor)
            agent, manager = auth.user_by_email("agent@demo.test"), auth.user_by_email("manager@demo.test")
            past = history.seed_history(agent, manager, timezone=tenant.timezone, today=today)
            created.append(f"{past} requests over the past {history.WEEKS} weeks")
            links, unlinked = _seed_tickets()
            created.append(f"{len(links) + len(unlinked)} tickets of today")
        if fresh_leads:
            created.append(f"{_seed_leads(actor)} leads of today")
        if not db.session.scalar(select(func.count()).select_from(CallRecord)):
            created.append(f"{_seed_calls()} dialer calls")
        db.session.flush()  # while the tenant is in context: the guard checks every write
    return SeedResult(tenant, created, links, unlinked)


def _seed_sla(actor: Actor) -> None:
    """A Beijing office's calendar (lunch break, China's holidays and make-up days) and
    the regulators a telecom provider in China answers to."""
    calendars.set_hours(DEFAULT_CALENDAR, "mon-fri 09:00-12:00,13:30-18:00", actor=actor)
    for year in (utcnow().year, utcnow().year + 1):
        with suppress(DomainError):  # chinesecalendar may not know next year yet
            calendars.import_china(DEFAULT_CALENDAR, year, actor=actor)
    versions.save(
        ConfigKind.DEADLINES,
        DEFAULT_KEY,
        {
            "calendar": DEFAULT_CALENDAR,
            "assignments": [
                {"kind": "*", "channel": "regulator_referral", "profile": "cn-12315-odr"},
                {"kind": "complaint", "channel": "*", "profile": "cn-telecom"},
            ],
            "custom": [],
        },
        actor=actor,
    )


def _seed_policy(actor: Actor) -> None:
    """Version 1 of the refund policy, in force from now (docs/examples/refund-policy.json)."""
    texts, terms = policies.read_file(POLICY_EXAMPLE.read_bytes())
    policies.publish(policies.create_draft(texts, terms, actor=actor), actor=actor)


def _seed_tickets() -> tuple[dict[str, str], dict[str, str]]:
    """The desk's tickets; the tracking links of those filed on the form, and why the
    others have none."""
    agent = auth.user_by_email("agent@demo.test")
    manager = auth.user_by_email("manager@demo.test")
    links = {}
    made = []
    for number, (name, phone, email, locale, reason, amount, description, fate) in enumerate(REQUESTS):
        submission = tickets.submit_refund_request(
            tickets.RefundRequest(
                customer=tickets.CustomerDetails(name=name, phone=phone, email=email, locale=locale),
                reason=reason,
                description=description,
                amount=Decimal(amount) if amount else None,
                uploads=[tickets.Upload("top-up-record.txt", EVIDENCE)] if number % 2 == 0 else [],
            ),
            nonce=f"demo-seed-{number}",
            ip=None,
        )
        _play(submission.ticket, fate, agent, manager)
        made.append(submission.ticket)
        links[submission.ticket.reference] = tracking_url(submission.tracking_token)
    phone_ticket = tickets.open_ticket(
        customer=tickets.CustomerDetails(name="周杰", phone="13900139000", locale="zh_CN"),
        kind="complaint",
        channel="phone",
        priority="high",
        description="客户来电投诉：多次要求停止营销外呼未果。",
        user=agent,
        ip=None,
    )
    tickets.log_call(
        phone_ticket,
        direction="inbound",
        number="13900139000",
        duration_seconds=312,
        outcome="answered",
        notes="客户情绪激动，要求书面答复。",
        user=agent,
        ip=None,
    )
    _seed_refunds(agent, phone_ticket, charged_after=made[3], disputed=made[6])
    late = _seed_late_letter(agent, manager)
    unlinked = {
        phone_ticket.reference: "opened by staff for a phone call; the caller gave no email for a link",
        late.reference: "opened by staff for a complaint by email; its link goes out with the first reply",
    }
    return links, unlinked


def _seed_late_letter(agent: User, manager: User) -> Ticket:
    """A complaint that sat unnoticed for weeks before it was logged: once staff give its
    true time of receipt, the telecom regulator's deadline is already past, so the desk
    shows a breach as it handles one: recorded at its due time, the assignee and the
    managers notified, the ticket marked overdue."""
    letter = tickets.open_ticket(
        customer=tickets.CustomerDetails(
            name="黄磊", phone="13700137000", email="huanglei@example.test", locale="zh_CN"
        ),
        kind="complaint",
        channel="email",
        priority="normal",
        description="客户来信投诉：套餐降级后仍按原价扣费，要求退还差额并给予书面答复。",
        user=agent,
        ip=None,
    )
    tickets.assign(letter, agent.id, user=manager, ip=None)
    tickets.set_receipt_time(
        letter,
        utcnow() - timedelta(days=LATE_LETTER_DAYS),
        "投诉邮件被误归入垃圾邮件，今天才发现。",
        user=agent,
        ip=None,
    )
    return letter


def _seed_refunds(agent: User, complaint: Ticket, *, charged_after: Ticket, disputed: Ticket) -> None:
    """A refund decided (its final response sent, its payout owed); a customer who was not
    satisfied and went to the 12315 platform, whose denial waits for a manager's approval;
    and a complaint the customer took to the telecom regulator."""
    refunds.propose(
        charged_after,
        refunds.Proposal(
            version_number=1,
            outcome="approved_full",
            reason_code="billing_error",
            clause="clause 3",
            amount="500.00",
            inputs=refunds.Inputs(),
            differs_reason="Charged after the contract ended: returned whole, no fee on money not owed.",
        ),
        user=agent,
        ip=None,
    )
    today = utcnow().date()
    refunds.record_escalation(
        disputed,
        refunds.Referral("platform_12315", "12315-2026-33871", today, today + timedelta(days=10)),
        user=agent,
        ip=None,
    )
    refunds.propose(
        disputed,
        refunds.Proposal(
            version_number=1,
            outcome="denied",
            reason_code="outside_policy",
            clause="clause 2",
            amount="0",
            inputs=refunds.Inputs(balance_used="150.00"),
            differs_reason="The unused balance, 200.00, was refunded in full on the first decision.",
        ),
        user=agent,
        ip=None,
    )
    refunds.record_escalation(
        complaint,
        refunds.Referral("telecom_regulator", "MIIT-12300-2026-0118", today, today + timedelta(days=7)),
        user=agent,
        ip=None,
    )


def _play(ticket: Ticket, fate: str, agent: User, manager: User) -> None:
    """Move a new ticket along to where the demo wants it."""
    if fate == "new":
        return
    tickets.assign(ticket, agent.id, user=manager, ip=None)
    if fate == "withdrawn":
        tickets.withdraw_by_customer(ticket, ip=None)
        return
    chinese = ticket.requester.locale == "zh_CN"
    tickets.add_note(ticket, "Checked billing: the charge is on record.", user=agent, ip=None)
    tickets.reply(
        ticket,
        "您好，我们正在核实您的账单。" if chinese else "We are checking your bill.",
        user=agent,
        ip=None,
    )
    if fate == "awaiting_customer":
        tickets.request_information(ticket, "请提供接通率统计截图。", user=agent, ip=None)
    if fate in ("resolved", "closed", "not_satisfied"):
        # Refunds are resolved through a decision (the demo has those, below); these
        # customers turned out to need an explanation, not their money back.
        outcome = (
            "经核实，这笔扣费是您套餐的月租，并非重复扣费；您已确认无需退款。"
            if chinese
            else "The charge is your plan's monthly fee, not a duplicate; you confirmed no refund is needed."
        )
        tickets.resolve(ticket, outcome, user=agent, ip=None, no_refund_reason=NO_REFUND_REQUESTED)
    if fate == "closed":
        tickets.close(ticket, user=manager, ip=None)
    if fate == "not_satisfied":
        tickets.not_satisfied(ticket, "金额不对。", ip=None)


# (name, company, phone, need, what happens next)
LEADS = (
    ("赵敏", "敏捷外呼", "13700137001", "想试用 10 个坐席的外呼系统", "new"),
    ("Chen Jing", "Jing Logistics", "13700137002", "Virtual numbers for 3 cities", "contacted"),
    ("孙磊", "磊石科技", "13700137003", "20 个坐席，需要录音", "qualified"),
    ("Zhou Lan", "Lanfeng Trading", "13700137004", "A trial of the predictive dialer", "trial"),
    ("王芳", None, "13800138001", "换用你们的外呼系统", "won"),  # the first refund request's requester
    ("钱立", "立信咨询", "13700137006", "了解价格", "lost"),
    ("Ma Tao", None, "13700137007", "Call me after 6 pm", "unreachable"),
    ("冯雪", "雪松教育", "13700137008", "明天上午联系", "overdue"),
)


def _seed_leads(actor: Actor) -> int:
    """Leads in every stage, one whose promised call is overdue, and a number on the
    do-not-contact list (the caller of RF-1008 asked through 12321 to stop sales calls)."""
    agent = auth.user_by_email("agent@demo.test")
    agent.takes_leads = True
    texts = consent.consent_texts("zh_CN")
    proofs = [(texts[Purpose.CONTACT], True, None), (texts[Purpose.MARKETING], False, None)]
    for name, company, phone, need, fate in LEADS:
        at = utcnow() - timedelta(days=14) if fate == "overdue" else utcnow()  # due whatever the weekday
        lead = intake.receive(
            intake.LeadDetails(name=name, phone=phone, company=company, need=need, utm_source="baidu"),
            source=Source.WEB_FORM,
            actor=Actor("anonymous", None, "trial-form"),
            ip=None,
            proofs=proofs,
            at=at,
        ).lead
        _play_lead(lead, fate, agent, actor)
    dnc.add_entry(
        "phone",
        "13900139000",
        reason="12321 举报：要求停止营销外呼",
        source=EntrySource.REPORT_12321,
        actor=actor,
    )
    return len(LEADS)


DIALER_NUMBER = "+861065550100"
DIALER_CALLS = (
    # (customer's number, outcome, seconds, minutes ago, note)
    ("13700137002", "answered", 185, 50, "约好明天上午演示三个城市的虚拟号码"),  # a contacted lead
    ("13600136000", "no_answer", 0, 35, ""),  # nobody's: waits on the calls page
    ("15900159000", "answered", 42, 20, "对方说打错了"),
)


def _seed_calls() -> int:
    """Calls as the provider's dialer posts them: one filed on its lead by the number,
    two that match nobody and wait for staff on the calls page."""
    dialer = Actor("api_key", None, "api_key:demo-dialer")
    for phone, outcome, seconds, minutes_ago, note in DIALER_CALLS:
        calls.receive(
            calls.DialerCall(
                "outbound",
                DIALER_NUMBER,
                phone,
                utcnow() - timedelta(minutes=minutes_ago),
                seconds,
                outcome,
                note=note,
            ),
            actor=dialer,
            api_key_id=None,
        )
    return len(DIALER_CALLS)


def _play_lead(lead: Lead, fate: str, agent: User, actor: Actor) -> None:
    if fate in ("new", "overdue"):
        return
    if fate == "unreachable":
        for _attempt in range(5):
            pipeline.log_call(lead, pipeline.CallLog("no_answer"), user=agent, actor=actor)
        return
    said = "客户确认需求，介绍了按坐席计费和不限分钟套餐。"
    pipeline.log_call(
        lead, pipeline.CallLog("answered", duration_seconds=240, note=said), user=agent, actor=actor
    )
    if fate in ("qualified", "trial", "won"):
        pipeline.set_stage(lead, "qualified", user=agent, actor=actor)
    if fate in ("trial", "won"):
        today = utcnow().date()
        pipeline.set_stage(
            lead,
            "trial",
            user=agent,
            actor=actor,
            trial_starts_on=today,
            trial_ends_on=today + timedelta(days=14),
        )
    if fate == "won":
        pipeline.set_stage(lead, "won", user=agent, actor=actor)
    if fate == "lost":
        pipeline.set_stage(lead, "lost", user=agent, actor=actor, lost_reason="价格高于预算")
