"""Loads a realistic desk into PostgreSQL for the benchmarks, at volume.

Tenants are created through the app's own services (``create_tenant``, so each has its
settings and an audit chain; ``create_user`` for its agents). Customers, tickets and one
inbound thread entry per ticket (its description) are then bulk-loaded with psycopg
``COPY``, one tenant per worker thread, and the tables are ANALYZEd. With
``--messages-per-ticket N`` each ticket's thread has N entries: the description, then a
mix of staff replies, internal notes, call logs and the customer's follow-ups in the
ticket's language. Each ticket's ``search_vector`` (the full-text index,
``crm.tickets.search``) is filled in the same COPY from the entries it indexes.

Raw SQL is deliberate in this file: COPY, reserving id ranges from the sequences, and
dropping the tables' secondary indexes and foreign keys during the load, then re-creating
them from their own catalogue definitions (so the schema ends exactly as the migrations
made it, and re-adding each foreign key checks every loaded row in one pass). Writing a
million tickets through ``submit_refund_request`` would take hours. The bulk rows carry
no audit events: each tenant's chain holds what the services recorded (its creation and
its agents), so ``audit verify`` still passes.

    .venv/bin/python bench/seed.py \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/ledgerdesk_perf \\
        --tenants 10 --tickets 1000000 --big-tenant-tickets 100000 [--messages-per-ticket 5] \\
        [--threads 4] [--reset]

Tenant slugs are ``perf-00`` (the big tenant) … ``perf-NN``; each has agents
``agent0@perf-NN.test`` … with the password ``AGENT_PASSWORD`` below.
"""

import argparse
import functools
import json
import math
import random
import re
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import flask_migrate
import psycopg
from sqlalchemy.engine import make_url

import crm
from crm.audit.service import Actor
from crm.auth.service import create_user
from crm.extensions import db
from crm.provisioning.models import TenantSettings
from crm.provisioning.service import create_tenant, tenant_by_slug
from crm.tickets import search
from tenants import tenant_context

AGENT_PASSWORD = "perf-agent-password"
BIG_SLUG = "perf-00"
LOADED_TABLES = ("customers", "tickets", "thread_entries")
HISTORY_DAYS = 730
CHUNK = 20_000  # tickets generated and COPYed per batch, so memory stays flat

# --- what a desk looks like ---------------------------------------------------------------

SURNAMES = (
    ("王", "Wang"), ("李", "Li"), ("张", "Zhang"), ("刘", "Liu"), ("陈", "Chen"), ("杨", "Yang"),
    ("黄", "Huang"), ("赵", "Zhao"), ("吴", "Wu"), ("周", "Zhou"), ("徐", "Xu"), ("孙", "Sun"),
    ("马", "Ma"), ("朱", "Zhu"), ("胡", "Hu"), ("郭", "Guo"), ("何", "He"), ("高", "Gao"),
    ("林", "Lin"), ("罗", "Luo"), ("郑", "Zheng"), ("梁", "Liang"), ("谢", "Xie"), ("宋", "Song"),
    ("唐", "Tang"), ("许", "Xu"), ("韩", "Han"), ("冯", "Feng"), ("邓", "Deng"), ("曹", "Cao"),
    ("彭", "Peng"), ("曾", "Zeng"), ("肖", "Xiao"), ("田", "Tian"), ("董", "Dong"), ("袁", "Yuan"),
    ("潘", "Pan"), ("蒋", "Jiang"), ("蔡", "Cai"), ("余", "Yu"), ("杜", "Du"), ("叶", "Ye"),
    ("欧阳", "Ouyang"), ("司马", "Sima"),
)  # fmt: skip
GIVEN_NAMES = (
    ("伟", "Wei"), ("芳", "Fang"), ("娜", "Na"), ("秀英", "Xiuying"), ("敏", "Min"), ("静", "Jing"),
    ("丽", "Li"), ("强", "Qiang"), ("磊", "Lei"), ("军", "Jun"), ("洋", "Yang"), ("勇", "Yong"),
    ("艳", "Yan"), ("杰", "Jie"), ("娟", "Juan"), ("涛", "Tao"), ("明", "Ming"), ("超", "Chao"),
    ("秀兰", "Xiulan"), ("霞", "Xia"), ("平", "Ping"), ("刚", "Gang"), ("桂英", "Guiying"),
    ("婷", "Ting"), ("雪", "Xue"), ("建华", "Jianhua"), ("志强", "Zhiqiang"), ("子涵", "Zihan"),
    ("浩然", "Haoran"), ("欣怡", "Xinyi"), ("梓萱", "Zixuan"), ("宇轩", "Yuxuan"), ("思远", "Siyuan"),
    ("晓东", "Xiaodong"), ("海燕", "Haiyan"), ("国庆", "Guoqing"), ("一鸣", "Yiming"), ("佳琪", "Jiaqi"),
)  # fmt: skip
WESTERN_GIVEN = ("Emily", "David", "Grace", "Kevin", "Linda", "Michael", "Sophie", "Tony", "Vivian", "Jason")
MOBILE_PREFIXES = (
    "130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152", "155",
    "156", "157", "158", "159", "166", "176", "177", "178", "180", "181", "182", "183", "185",
    "186", "187", "188", "189", "191", "198", "199",
)  # fmt: skip
EMAIL_DOMAINS = ("example.com", "example.net", "example.org", "mail.example.com")

# (value, weight) tables
KINDS = (("refund", 70), ("complaint", 20), ("inquiry", 10))
CHANNELS = (("web_form", 60), ("phone", 20), ("email", 15), ("regulator_referral", 3), ("api", 2))
PRIORITIES = (("normal", 70), ("low", 10), ("high", 15), ("urgent", 5))
REASONS = (
    ("service_not_as_described", 24), ("unused_balance", 26), ("cancelled_contract", 18),
    ("unauthorized_charge", 14), ("duplicate_charge", 10), ("other", 8),
)  # fmt: skip
# A desk's history is mostly settled; what is still open is recent.
OLD_STATUSES = (("closed", 80), ("resolved", 13), ("withdrawn", 5), ("open", 1), ("awaiting_customer", 1))
RECENT_STATUSES = (
    ("new", 20), ("open", 30), ("awaiting_customer", 15), ("resolved", 25), ("closed", 5), ("withdrawn", 5),
)  # fmt: skip
RECENT_DAYS = 60
# Share of the day's tickets by hour, Asia/Shanghai (UTC+8): office hours and evenings.
HOUR_WEIGHTS = (1, 1, 1, 1, 1, 1, 2, 4, 8, 12, 13, 12, 9, 11, 12, 12, 11, 9, 7, 7, 6, 5, 3, 2)

DESCRIPTIONS_ZH = {
    "service_not_as_described": (
        "销售承诺外呼接通率不低于60%，实际不到20%，要求退还套餐费用{amount}元。",
        "购买的云号码套餐与宣传不符，无法正常呼出，申请退款{amount}元。",
    ),
    "unused_balance": (
        "我已注销外呼账户，账户内剩余余额{amount}元，申请退还至原支付账户。",
        "合同到期不再续费，请退还未使用的预存话费{amount}元。",
    ),
    "cancelled_contract": (
        "合同已于上月解除，但仍被扣费{amount}元，请尽快处理。",
        "已按合同约定提前30天书面通知解约，本月仍扣款{amount}元。",
    ),
    "unauthorized_charge": (
        "账单中出现未订购的增值服务，金额{amount}元，我从未授权。",
        "发现一笔{amount}元的扣款，我本人及公司均未办理该业务。",
    ),
    "duplicate_charge": (
        "同一笔月租被重复扣费两次，每次{amount}元，请退还多扣部分。",
        "银行流水显示同日两笔相同扣款{amount}元，属重复扣费。",
    ),
    "other": ("想咨询退费流程及所需材料。", "发票抬头有误，需要重开，并退还差额{amount}元。"),
}
DESCRIPTIONS_EN = {
    "service_not_as_described": (
        "The plan promised a 60% connect rate; we got under 20%. Please refund {amount}.",
        "The virtual numbers never worked for outbound calls as advertised. Refund {amount}, please.",
    ),
    "unused_balance": (
        "I closed my account last month. Please refund the unused balance of {amount}.",
        "Our contract ended and we will not renew; {amount} of prepaid credit is left.",
    ),
    "cancelled_contract": (
        "The contract was cancelled with 30 days' notice, yet I was charged {amount} again.",
        "We cancelled in writing but the monthly fee of {amount} is still being taken.",
    ),
    "unauthorized_charge": (
        "A value-added service I never ordered was billed: {amount}.",
        "There is a charge of {amount} on my statement that nobody here authorised.",
    ),
    "duplicate_charge": (
        "I was charged twice for the same month, {amount} each time.",
        "Two identical debits of {amount} on the same day; one is a duplicate.",
    ),
    "other": ("How do I ask for a refund, and what documents do you need?", "Wrong invoice; {amount}."),
}
FOLLOW_UPS_ZH = (
    "",
    "",
    "附件为充值记录和银行流水截图。",
    "此前已多次致电客服，均未得到答复。如仍无法解决，我将向通信管理局投诉。",
    "请尽快回电，工作日9点到18点均可联系。",
)
FOLLOW_UPS_EN = (
    "",
    "",
    " Receipts and my bank statement are attached.",
    " I have called support three times without an answer; next step is the regulator.",
    " Please call me back on weekdays between 9 and 6.",
)

# --- the rest of a thread (``--messages-per-ticket`` > 1) ------------------------------------
# (weight, template). Weights shape how often words occur, so searches of each kind have
# something to find: 退款 / refund in most tickets, 发票 / invoice in a few per cent,
# 仲裁 / 公证 / arbitration in a handful, an order number in one; 彩铃 / ringback is a
# word of the other tenants' desks, almost never said at perf-00's.
# Slots: {amount} {date} {order} {days} {minutes} {tail} {agent} {ref}
REPLIES_ZH = (
    (30, "您好，您的退款申请已受理，预计{days}个工作日内退回原支付账户，请留意银行到账通知。"),
    (20, "您好，经核实您反映的情况属实，我们将为您办理退款{amount}元，款项原路退回。"),
    (15, "您好，退款需要提供充值记录截图和身份证明，请在{days}日内回复本邮件补充材料。"),
    (12, "非常抱歉给您带来不便，您的套餐费用已按剩余天数折算，退款金额为{amount}元。"),
    (10, "您好，您账户余额{amount}元已冻结，待财务审核通过后办理退款。"),
    (10, "您好，关于订单{order}，我们已通知财务部门，退款将在{date}前完成。"),
    (8, "您好，外呼接通率受线路和号码质量影响，我们已为您更换线路，如仍不满意可申请退款。"),
    (8, "您好，虚拟号码已于{date}停用，停用后不再产生月租，此前的费用按合同处理。"),
    (6, "您好，重复扣费的{amount}元已确认，将在下个账单周期内抵扣或退款，请您选择。"),
    (6, "您好，您的申请已转交主管审批，审批结果会在{days}个工作日内通知您。"),
    (5, "您好，我们多次致电{tail}未能接通，请您方便时回电客服热线，以便尽快处理退款。"),
    (5, "您好，增值服务为系统默认开通，已为您取消并退还{amount}元，给您带来不便深表歉意。"),
    (4, "您好，根据合同第七条，提前解约需提前30天书面通知，您的解约申请已登记。"),
    (4, "您好，款项已于{date}退回，银行处理通常需要1到3个工作日，请注意查收。"),
    (3, "您好，您的工单{ref}已处理完毕，如对处理结果有异议，可在7日内提出。"),
    (1, "您好，退款完成后我们会为您重新开具发票，原发票请作废处理。"),
    (1, "您好，红字发票已开具，退款金额{amount}元将与发票冲抵后退回。"),
    (0.02, "您好，您提出的仲裁申请我们已收到，法务部门会与您联系。"),
)
NOTES_ZH = (
    (25, "已核对充值记录，金额{amount}元无误，同意退款，转财务。"),
    (15, "客户情绪激动，多次提到要投诉，建议尽快处理。"),
    (15, "查询外呼日志：近30天接通率{tail}%左右，低于合同承诺，支持部分退款。"),
    (12, "余额退款需财务复核，已提交审批单，订单号{order}。"),
    (10, "客户为老用户，套餐已续费两年，可酌情补偿{amount}元。"),
    (10, "系统显示增值服务于{date}开通，无客户确认记录，按未授权扣费处理。"),
    (8, "重复扣费已由银行确认，流水号{order}，退款{amount}元。"),
    (8, "虚拟号码池已回收，客户名下号码全部停用。"),
    (6, "等待客户补充身份证明，{days}天未回复则按流程关闭。"),
    (5, "和销售核实：销售承诺的接通率未写入合同，建议协商处理。"),
    (4, "主管批准退款{amount}元，超出部分不予退还。"),
    (3, "客户要求退款到对公账户，需提供公司证明和开户许可证。"),
    (1, "发票已开，需先红冲发票再退款，已通知财务。"),
    (1, "客户要求补开发票{amount}元，抬头已核对。"),
    (0.03, "客户称已委托律师，拟申请仲裁，已报法务。"),
    (0.02, "客户提交了公证处出具的公证书，作为扣费证据。"),
)
CALLS_ZH = (
    (25, "外呼客户，已告知退款进度，客户表示认可。"),
    (20, "未接通，稍后再联系。"),
    (15, "客户来电询问退款到账时间，已告知{days}个工作日内到账。"),
    (12, "与客户沟通套餐折算方案，客户同意退款{amount}元。"),
    (10, "客户反映外呼接通率低，已记录线路问题，转技术排查。"),
    (8, "客户要求尽快处理，否则向通信管理局投诉，已安抚。"),
    (6, "客户确认已收到退款{amount}元，同意结单。"),
    (5, "客户询问虚拟号码能否保留，已说明停用规则。"),
    (4, "客户不同意部分退款，要求全额退还{amount}元，需主管介入。"),
    (3, "号码{tail}为空号，请核实客户联系方式。"),
    (1, "客户询问发票如何重开，已说明流程。"),
    (0.02, "客户表示已向仲裁委员会提交申请。"),
)
FOLLOWUPS_ZH = (
    (25, "请问退款什么时候能到账？已经等了{days}天了。"),
    (15, "补充材料已上传，请查收：充值记录、银行流水和身份证复印件。"),
    (12, "你们说的退款金额不对，我实际充值了{amount}元。"),
    (10, "我已经收到退款了，谢谢。"),
    (10, "订单{order}的扣款还没有退回，请再查一下。"),
    (8, "虚拟号码还在扣月租，请立即停用。"),
    (8, "外呼一直打不出去，套餐根本用不了，我要全额退款。"),
    (6, "如果{date}前还不处理，我就去通信管理局投诉。"),
    (5, "余额为什么被冻结了？我没有申请注销。"),
    (4, "请不要再打我电话了，邮件联系即可。"),
    (4, "退款后发票怎么处理？我们公司需要报销凭证。"),
    (1, "请把发票寄到公司地址，抬头和税号见附件。"),
    (0.02, "我已经找了公证处公证扣费记录，请认真对待。"),
)
REPLIES_EN = (
    (
        30,
        "Hello, your refund request is accepted; it goes back to where you paid within {days} working days.",
    ),
    (15, "Hello, we checked your account and will refund {amount}. Sorry for the trouble."),
    (12, "Hello, for the refund we need the top-up receipt and proof of identity; reply within {days} days."),
    (10, "Hello, the remaining balance of {amount} is frozen until finance approves the refund."),
    (10, "Hello, about order {order}: finance has been told and the refund will be done by {date}."),
    (8, "Hello, the virtual number was suspended on {date}; no monthly fee is charged after that."),
    (
        6,
        "Hello, the duplicate charge of {amount} is confirmed; choose a refund or a credit on the next bill.",
    ),
    (5, "Hello, your case {ref} is closed. You may object within 7 days."),
    (1, "Hello, once the refund is done we will issue a new invoice; please void the old one."),
    (0.02, "Hello, we received your notice of arbitration; our legal team will contact you."),
)
NOTES_EN = (
    (25, "Top-up record checked, {amount} correct, refund approved, passed to finance."),
    (15, "Customer upset, mentioned the regulator twice; handle quickly."),
    (12, "Outbound call logs: connect rate about {tail}% over 30 days, below the contract. Partial refund."),
    (10, "Balance refund needs finance review; approval form filed, order {order}."),
    (8, "Value-added service switched on {date} with no consent on file; treat as unauthorised."),
    (6, "Waiting for ID from the customer; close after {days} days without a reply."),
    (1, "Invoice already issued: credit note first, then refund."),
    (0.03, "Customer says a lawyer is preparing arbitration; legal informed."),
)
CALLS_EN = (
    (25, "Called the customer about the refund; they are fine with the timeline."),
    (20, "No answer, try again later."),
    (15, "Customer called asking when the refund arrives; told {days} working days."),
    (12, "Agreed a prorated refund of {amount} on the phone."),
    (8, "Customer threatens to complain to the regulator; calmed down."),
    (5, "Customer confirmed the refund of {amount} arrived; ok to close."),
    (1, "Customer asked how to get a corrected invoice; explained."),
)
FOLLOWUPS_EN = (
    (25, "When will the refund arrive? It has been {days} days."),
    (15, "Documents uploaded: top-up receipts, bank statement and ID."),
    (10, "The refund amount is wrong, I paid {amount}."),
    (10, "Refund received, thank you."),
    (8, "Order {order} has still not been refunded, please check again."),
    (6, "The virtual number is still being charged every month. Stop it now."),
    (1, "What happens to the invoice after the refund? We need it for expenses."),
)
# Ringback tones (彩铃): only the other tenants sell them; perf-00 hears of them rarely.
RINGBACK_ZH = (
    (30, "彩铃业务未经同意开通，每月扣费{amount}元，要求退订并退款。"),
    (20, "已为客户退订彩铃，退还{amount}元。"),
    (10, "客户询问彩铃能否换成企业宣传语音，已告知办理方式。"),
)
RINGBACK_EN = (
    (30, "A ringback tone was switched on without consent, {amount} a month; cancel and refund it."),
    (20, "Ringback tone cancelled for the customer, {amount} refunded."),
)
RINGBACK_SHARE = {True: 0.0005, False: 0.25}  # per entry, by "is the big tenant"
ENTRY_KINDS = (("public_reply", 40), ("internal_note", 25), ("call_log", 15), ("inbound_message", 20))
THREAD_TEXTS = {
    ("public_reply", "zh_CN"): REPLIES_ZH,
    ("internal_note", "zh_CN"): NOTES_ZH,
    ("call_log", "zh_CN"): CALLS_ZH,
    ("inbound_message", "zh_CN"): FOLLOWUPS_ZH,
    ("public_reply", "en"): REPLIES_EN,
    ("internal_note", "en"): NOTES_EN,
    ("call_log", "en"): CALLS_EN,
    ("inbound_message", "en"): FOLLOWUPS_EN,
}
CALL_OUTCOMES = (("answered", 70), ("no_answer", 18), ("busy", 5), ("voicemail", 5), ("refused", 2))


def template_table(table: tuple[tuple[float, str], ...]) -> tuple[tuple[str, ...], list[float]]:
    values, cumulative, total = [], [], 0.0
    for weight, template in table:
        total += weight
        values.append(template)
        cumulative.append(total)
    return tuple(values), cumulative


# Tokenising millions of texts is the load's cost. Texts repeat in pieces (templates
# around amounts, dates and numbers), so they are tokenised a piece at a time with a
# cache. Cutting at spaces and punctuation changes nothing: ``search.tokens`` never joins
# across them (a run of CJK or of letters and digits stops there).
TEXT_PIECES = re.compile(r"[\s,.;:!?%()'\"/\-，。、；：！？（）“”—]+")


@functools.lru_cache(maxsize=1 << 18)
def piece_tokens(piece: str) -> tuple[str, ...]:
    return tuple(search.tokens(piece))


def text_tokens(body: str) -> list[str]:
    if len(body) > search.MAX_TEXT:
        return search.tokens(body)
    return [token for piece in TEXT_PIECES.split(body) if piece for token in piece_tokens(piece)]


@dataclass(frozen=True)
class TenantPlan:
    """What one worker loads for one tenant, with the id ranges reserved for it."""

    index: int
    tenant_id: int
    slug: str
    prefix: str
    currency: str
    first_number: int
    tickets: int
    agent_ids: tuple[int, ...]
    first_ticket_id: int
    first_customer_id: int
    first_entry_id: int
    messages: int = 1  # thread entries per ticket


@dataclass
class LoadResult:
    slug: str
    tickets: int
    customers: int
    seconds: float


def weighted(table: tuple[tuple[str, int], ...]) -> tuple[tuple[str, ...], list[int]]:
    values = tuple(value for value, _ in table)
    cumulative, total = [], 0
    for _, weight in table:
        total += weight
        cumulative.append(total)
    return values, cumulative


class Desk:
    """Draws the rows of one tenant's history, deterministically from its seed."""

    def __init__(self, plan: TenantPlan, now: datetime, seed: int) -> None:
        self.plan = plan
        self.now = now
        self.rng = random.Random(seed * 1_000_003 + plan.index)
        self.kinds = weighted(KINDS)
        self.channels = weighted(CHANNELS)
        self.priorities = weighted(PRIORITIES)
        self.reasons = weighted(REASONS)
        self.old_statuses = weighted(OLD_STATUSES)
        self.recent_statuses = weighted(RECENT_STATUSES)
        self.hours = weighted(tuple((str(h), w) for h, w in enumerate(HOUR_WEIGHTS)))
        self.customers: list[tuple[int, str | None]] = []  # (id, account_ref) of those made so far
        self.next_customer = 0
        self.account_letters = "".join(chr(65 + (plan.index * 7 + k) % 26) for k in range(2))
        self.entry_kinds = weighted(ENTRY_KINDS)
        self.call_outcomes = weighted(CALL_OUTCOMES)
        self.texts = {key: template_table(table) for key, table in THREAD_TEXTS.items()}
        self.ringback = {"zh_CN": template_table(RINGBACK_ZH), "en": template_table(RINGBACK_EN)}
        self.ringback_share = RINGBACK_SHARE[plan.slug == BIG_SLUG]
        self.checked_texts = 0

    # -- time --

    def created_times(self) -> list[datetime]:
        """Creation instants over the last two years, busier lately and in office hours,
        oldest first (so numbers and ids rise with time, as on a live desk)."""
        rng, growth = self.rng, 1.5  # today is 2.5 times as busy as two years ago
        start = self.now - timedelta(days=HISTORY_DAYS)
        hours, hour_weights = self.hours
        times = []
        for _ in range(self.plan.tickets):
            u = rng.random()
            fraction = (-1 + math.sqrt(1 + 2 * growth * u * (1 + growth / 2))) / growth
            day = start + timedelta(days=int(fraction * HISTORY_DAYS))
            # Midnight in Shanghai is 16:00 UTC the day before.
            midnight_cst = day.replace(hour=16, minute=0, second=0, microsecond=0) - timedelta(days=1)
            hour = int(rng.choices(hours, cum_weights=hour_weights)[0])
            instant = midnight_cst + timedelta(
                hours=hour, seconds=rng.randrange(3600), microseconds=rng.randrange(1_000_000)
            )
            times.append(min(instant, self.now - timedelta(seconds=rng.randrange(1, 600))))
        times.sort()
        return times

    # -- people --

    def person(self, serial: int) -> tuple[str, str, str]:
        """(name, ASCII handle for the email, locale)."""
        rng = self.rng
        surname, surname_latin = rng.choice(SURNAMES)
        given, given_latin = rng.choice(GIVEN_NAMES)
        roll = rng.random()
        if roll < 0.78:
            return surname + given, f"{given_latin}.{surname_latin}".lower(), "zh_CN"
        if roll < 0.93:
            return f"{surname_latin} {given_latin}", f"{surname_latin}{given_latin}".lower(), "en"
        western = rng.choice(WESTERN_GIVEN)
        return f"{western} {surname_latin}", f"{western}.{surname_latin}".lower(), "en"

    def phone(self, serial: int) -> str:
        """A unique E.164 +86 mobile number per customer of this tenant."""
        suffix = (serial * 2_654_435_761 + self.plan.index * 104_729) % 100_000_000
        return f"+86{MOBILE_PREFIXES[serial % len(MOBILE_PREFIXES)]}{suffix:08d}"

    def new_customer(self, created_at: datetime) -> tuple:
        serial = self.next_customer
        self.next_customer += 1
        customer_id = self.plan.first_customer_id + serial
        name, handle, locale = self.person(serial)
        rng = self.rng
        email = f"{handle}{serial}@{rng.choice(EMAIL_DOMAINS)}" if rng.random() < 0.55 else None
        account_ref = (
            f"{self.account_letters}{10_000_000 + (serial * 7919) % 90_000_000:08d}"
            if rng.random() < 0.85
            else None
        )
        self.customers.append((customer_id, account_ref))
        return (
            customer_id,
            self.plan.tenant_id,
            name,
            self.phone(serial),
            email,
            account_ref,
            locale,
            created_at,
        )

    # -- tickets --

    def description(self, reason: str, locale: str, amount_minor: int | None) -> str:
        rng = self.rng
        amount = f"{amount_minor / 100:.2f}" if amount_minor is not None else "—"
        if locale == "zh_CN":
            return rng.choice(DESCRIPTIONS_ZH[reason]).format(amount=amount) + rng.choice(FOLLOW_UPS_ZH)
        text = rng.choice(DESCRIPTIONS_EN[reason]).format(amount=f"{self.plan.currency} {amount}")
        return text + rng.choice(FOLLOW_UPS_EN)

    def amount(self, kind: str) -> int | None:
        rng = self.rng
        if kind == "inquiry" or (kind == "complaint" and rng.random() < 0.6) or rng.random() < 0.08:
            return None
        major = math.exp(rng.gauss(5.3, 1.1))  # median about 200
        return round(major) * 100 if rng.random() < 0.7 else round(major * 100)

    def settle(self, status: str, created_at: datetime) -> tuple[datetime, datetime | None]:
        """(updated_at, resolved_at) consistent with the status and today's date."""
        rng, now = self.rng, self.now
        if status in ("resolved", "closed"):
            resolved = created_at + timedelta(minutes=int(rng.lognormvariate(7.5, 1.0)))
            resolved = max(created_at, min(resolved, now - timedelta(minutes=1)))
            updated = min(resolved + timedelta(days=7), now) if status == "closed" else resolved
            return updated, resolved
        touched = created_at + timedelta(minutes=int(rng.expovariate(1 / 600)))
        return max(created_at, min(touched, now)), None

    def thread(
        self,
        ticket_id: int,
        customer_id: int,
        locale: str,
        created_at: datetime,
        amount_minor: int | None,
        reference: str,
        agent: int,
    ) -> list[tuple[str, str, int | None, str, str, datetime]]:
        """The entries after the description: (kind, author_kind, author, body, details
        JSON, created_at), in order, a little after the ticket and never in the future."""
        rng, now = self.rng, self.now
        entries = []
        at = created_at
        kinds = rng.choices(self.entry_kinds[0], cum_weights=self.entry_kinds[1], k=self.plan.messages - 1)
        if kinds and kinds[0] == "inbound_message":  # someone at the desk answers first
            kinds[0] = "public_reply"
        amount = amount_minor if amount_minor is not None else round(math.exp(rng.gauss(5.3, 1.1))) * 100
        for kind in kinds:
            # Minutes to days later: median about three hours.
            at = min(at + timedelta(minutes=rng.lognormvariate(5.2, 1.3)), now - timedelta(seconds=1))
            at = max(at, created_at)
            if rng.random() < self.ringback_share:
                templates, cumulative = self.ringback[locale]
            else:
                templates, cumulative = self.texts[(kind, locale)]
            template = rng.choices(templates, cum_weights=cumulative)[0]
            day = at + timedelta(days=rng.randrange(1, 15))
            values = {
                "amount": f"{amount / 100:.2f}"
                if locale == "zh_CN"
                else f"{self.plan.currency} {amount / 100:.2f}",
                "date": f"{day.month}月{day.day}日" if locale == "zh_CN" else f"{day:%d %B}",
                "order": f"DD{created_at:%Y%m%d}{rng.randrange(1_000_000):06d}",
                "days": rng.choice((3, 5, 7, 10, 15)),
                "minutes": rng.randrange(1, 30),
                "tail": f"{rng.randrange(10, 100)}",
                "ref": reference,
            }
            body = template.format(**values) if "{" in template else template
            details = "{}"
            if kind == "call_log":
                outcome = rng.choices(self.call_outcomes[0], cum_weights=self.call_outcomes[1])[0]
                if outcome != "answered" and rng.random() < 0.7:
                    body = ""  # an unanswered call often has no notes
                details = json.dumps(
                    {
                        "direction": "outbound" if rng.random() < 0.75 else "inbound",
                        "number": self.phone(customer_id - self.plan.first_customer_id),
                        "duration_seconds": rng.randrange(30, 900) if outcome == "answered" else 0,
                        "outcome": outcome,
                    }
                )
            staff = kind != "inbound_message"
            entries.append(
                (kind, "staff" if staff else "customer", agent if staff else None, body, details, at)
            )
        return entries

    def search_vector(self, bodies: list[str]) -> str:
        """The ticket's ``search_vector``, as the app would index these entries."""
        found = []
        for body in bodies:
            found.extend(text_tokens(body))
            self.checked_texts += 1
            if self.checked_texts % 5_000 == 1:  # the cached tokeniser reads as the app does
                assert text_tokens(body) == search.tokens(body), body
        return search.tsvector_literal(found, self.plan.tenant_id)

    def rows(self) -> Iterator[tuple[list[tuple], list[tuple], list[tuple]]]:
        """Batches of (customers, tickets, thread entries) in creation order."""
        plan, rng, now = self.plan, self.rng, self.now
        times = self.created_times()
        agents = plan.agent_ids
        recent_after = now - timedelta(days=RECENT_DAYS)
        for start in range(0, plan.tickets, CHUNK):
            batch = times[start : start + CHUNK]
            size = len(batch)
            kinds = rng.choices(self.kinds[0], cum_weights=self.kinds[1], k=size)
            channels = rng.choices(self.channels[0], cum_weights=self.channels[1], k=size)
            priorities = rng.choices(self.priorities[0], cum_weights=self.priorities[1], k=size)
            reasons = rng.choices(self.reasons[0], cum_weights=self.reasons[1], k=size)
            customers, tickets, entries = [], [], []
            for offset, created_at in enumerate(batch):
                serial = start + offset
                # Seven in ten requests come from someone new; the rest from a returning customer.
                if not self.customers or rng.random() < 0.7:
                    customer_row = self.new_customer(created_at)
                    customers.append(customer_row)
                    customer_id, account_ref, locale = customer_row[0], customer_row[5], customer_row[6]
                else:
                    customer_id, account_ref = rng.choice(self.customers)
                    locale = "zh_CN" if rng.random() < 0.8 else "en"
                statuses = self.recent_statuses if created_at >= recent_after else self.old_statuses
                status = rng.choices(statuses[0], cum_weights=statuses[1])[0]
                kind, channel = kinds[offset], channels[offset]
                unassigned = (status == "new" and rng.random() < 0.8) or (
                    status == "withdrawn" and rng.random() < 0.5
                )
                assignee = None if unassigned else agents[rng.randrange(len(agents))]
                amount_minor = self.amount(kind)
                reason = reasons[offset] if kind != "inquiry" else "other"
                purchase_date: date | None = None
                if kind == "refund" and rng.random() < 0.7:
                    purchase_date = (created_at - timedelta(days=rng.randrange(1, 180))).date()
                updated_at, resolved_at = self.settle(status, created_at)
                number = plan.first_number + serial
                ticket_id = plan.first_ticket_id + serial
                by_staff = channel in ("phone", "email", "regulator_referral")
                agent = assignee or agents[serial % len(agents)]
                description = self.description(reason, locale, amount_minor)
                first_entry = plan.first_entry_id + serial * plan.messages
                thread = [
                    (
                        first_entry,
                        plan.tenant_id,
                        ticket_id,
                        "inbound_message",
                        "staff" if by_staff else "customer",
                        agent if by_staff else None,
                        description,
                        "{}",
                        created_at,
                    )
                ]
                if plan.messages > 1:
                    for k, (entry_kind, author_kind, author, body, details, at) in enumerate(
                        self.thread(
                            ticket_id,
                            customer_id,
                            locale,
                            created_at,
                            amount_minor,
                            f"{plan.prefix}-{number}",
                            agent,
                        ),
                        start=1,
                    ):
                        row = (ticket_id, entry_kind, author_kind, author, body, details, at)
                        thread.append((first_entry + k, plan.tenant_id, *row))
                vector = self.search_vector([row[6] for row in thread if row[3] in search.INDEXED_KINDS])
                entries.extend(thread)
                tickets.append(
                    (
                        ticket_id,
                        plan.tenant_id,
                        number,
                        f"{plan.prefix}-{number}",
                        kind,
                        channel,
                        priorities[offset],
                        status,
                        reason,
                        customer_id,
                        assignee,
                        account_ref if rng.random() < 0.9 else None,
                        purchase_date,
                        amount_minor,
                        plan.currency,
                        created_at + timedelta(hours=24),
                        status in ("new", "open") and rng.random() < 0.03,
                        created_at,
                        updated_at,
                        resolved_at,
                        vector,
                    )
                )
            yield customers, tickets, entries


CUSTOMER_COLUMNS = ("id", "tenant_id", "name", "phone", "email", "account_ref", "locale", "created_at")
TICKET_COLUMNS = (
    "id", "tenant_id", "number", "reference", "kind", "channel", "priority", "status", "reason",
    "customer_id", "assignee_id", "account_ref", "purchase_date", "amount_minor", "currency",
    "respond_by", "needs_manager", "created_at", "updated_at", "resolved_at", "search_vector",
)  # fmt: skip
ENTRY_COLUMNS = (
    "id", "tenant_id", "ticket_id", "kind", "author_kind", "author_user_id", "body", "details", "created_at",
)  # fmt: skip


def copy_rows(cursor: psycopg.Cursor, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def load_tenant(conninfo: str, plan: TenantPlan, now: datetime, seed: int) -> LoadResult:
    """COPY one tenant's customers, tickets and thread entries in one transaction, and
    move its ticket counter past the numbers used."""
    began = time.perf_counter()
    desk = Desk(plan, now, seed)
    with psycopg.connect(conninfo) as connection, connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = off")
        for customers, tickets, entries in desk.rows():
            copy_rows(cursor, "customers", CUSTOMER_COLUMNS, customers)
            copy_rows(cursor, "tickets", TICKET_COLUMNS, tickets)
            copy_rows(cursor, "thread_entries", ENTRY_COLUMNS, entries)
        cursor.execute(
            "UPDATE tenant_settings SET next_ticket_number = %s WHERE tenant_id = %s",
            (plan.first_number + plan.tickets, plan.tenant_id),
        )
    return LoadResult(plan.slug, plan.tickets, desk.next_customer, time.perf_counter() - began)


# --- set-up through the app --------------------------------------------------------------


def reset_database(conninfo: str) -> None:
    """Drop and recreate the database (only one whose name says it is for benchmarks)."""
    name = psycopg.conninfo.conninfo_to_dict(conninfo)["dbname"]
    if "perf" not in name and "bench" not in name:
        sys.exit(f"refusing to drop database {name!r}: its name must contain 'perf' or 'bench'")
    admin = psycopg.conninfo.make_conninfo(conninfo, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')


def build_app(url: str):
    # A cheap password hash: 10 tenants' agents are created in seconds, and the bench
    # sign-ins do not spend their time in scrypt. Production hashes are unaffected.
    return crm.create_app({"SQLALCHEMY_DATABASE_URI": url, "PASSWORD_HASH_METHOD": "scrypt:1024:8:1"})


def create_tenants(app, count: int, agents_per_tenant: int) -> list[tuple[int, str, str, str, int, tuple]]:
    """Tenants and their agents through the services; (id, slug, prefix, currency,
    next number, agent ids) of each."""
    made = []
    actor = Actor.operator("bench-seed")
    with app.app_context():
        for index in range(count):
            slug = f"perf-{index:02d}"
            tenant = tenant_by_slug(slug)
            if tenant is None:
                tenant = create_tenant(
                    slug=slug, name=f"华信通讯 {index:02d} (perf)", actor=actor, currency="CNY"
                )
            with tenant_context(tenant):
                agent_ids = []
                for k in range(agents_per_tenant):
                    surname, _ = SURNAMES[(index + k) % len(SURNAMES)]
                    given, _ = GIVEN_NAMES[(index * 3 + k) % len(GIVEN_NAMES)]
                    user = create_user(
                        email=f"agent{k}@{slug}.test",
                        role="agent",
                        password=AGENT_PASSWORD,
                        display_name=surname + given,
                        actor=actor,
                    )
                    agent_ids.append(user.id)
                settings = db.session.query(TenantSettings).one()
                made.append(
                    (
                        tenant.id,
                        slug,
                        settings.ticket_prefix,
                        tenant.currency,
                        settings.next_ticket_number,
                        tuple(agent_ids),
                    )
                )
                db.session.flush()
        db.session.commit()
    return made


def split_tickets(tenants: int, total: int, big: int) -> list[int]:
    """The big tenant's count first; the others share the remainder evenly."""
    if tenants == 1:
        return [total]
    rest = total - big
    if rest < 0:
        sys.exit("--big-tenant-tickets is larger than --tickets")
    share, extra = divmod(rest, tenants - 1)
    return [big] + [share + (1 if k < extra else 0) for k in range(tenants - 1)]


def reserve_ids(cursor: psycopg.Cursor, table: str, count: int) -> int:
    """The first of ``count`` consecutive ids taken from the table's sequence."""
    sequence = cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", (table,)).fetchone()[0]
    first = cursor.execute("SELECT nextval(%s)", (sequence,)).fetchone()[0]
    cursor.execute("SELECT setval(%s, %s)", (sequence, first + max(count, 1) - 1))
    return first


# --- indexes and foreign keys around the load -----------------------------------------------


def secondary_indexes(cursor: psycopg.Cursor) -> list[tuple[str, str]]:
    """(name, definition) of indexes on the loaded tables that back no constraint."""
    return cursor.execute(
        """
        SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
        FROM pg_index i
        WHERE i.indrelid = ANY(%s::regclass[])
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
        ORDER BY 1
        """,
        (list(LOADED_TABLES),),
    ).fetchall()


def foreign_keys(cursor: psycopg.Cursor) -> list[tuple[str, str, str]]:
    """(table, name, definition) of foreign keys on the loaded tables."""
    return cursor.execute(
        """
        SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
        FROM pg_constraint
        WHERE contype = 'f' AND conrelid = ANY(%s::regclass[])
        ORDER BY 1, 2
        """,
        (list(LOADED_TABLES),),
    ).fetchall()


def build_index(conninfo: str, definition: str) -> float:
    began = time.perf_counter()
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute("SET maintenance_work_mem = '512MB'")
        connection.execute(definition)
    return time.perf_counter() - began


def restore_schema(
    conninfo: str, indexes: list[tuple[str, str]], keys: list[tuple[str, str, str]], threads: int
) -> tuple[float, float]:
    """Re-create the dropped indexes (in parallel) and foreign keys (each validates all
    rows); returns the seconds each took, and prints each index's."""
    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, min(threads, 2))) as pool:
        seconds = list(pool.map(lambda index: build_index(conninfo, index[1]), indexes))
    indexed = time.perf_counter()
    for (name, _), took in sorted(zip(indexes, seconds, strict=True), key=lambda pair: -pair[1]):
        print(f"  index {name:<48} {took:7.1f} s")
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute("SET maintenance_work_mem = '512MB'")
        for table, name, definition in keys:
            connection.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
    return indexed - began, time.perf_counter() - indexed


# --- the run -------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--big-tenant-tickets", type=int, default=100_000)
    parser.add_argument("--agents", type=int, default=8, help="agents per tenant")
    parser.add_argument(
        "--messages-per-ticket",
        type=int,
        default=1,
        help="thread entries per ticket: the description, then replies, notes, calls and follow-ups",
    )
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seed", type=int, default=20261128)
    parser.add_argument("--reset", action="store_true", help="drop and recreate the database first")
    args = parser.parse_args()
    if args.messages_per_ticket < 1:
        sys.exit("--messages-per-ticket must be at least 1")

    url = make_url(args.database_url)
    if url.get_backend_name() != "postgresql":
        sys.exit("bench/seed.py loads PostgreSQL only")
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    timings: dict[str, float] = {}
    began = time.perf_counter()

    if args.reset:
        reset_database(conninfo)
    app = build_app(url.render_as_string(hide_password=False))
    with app.app_context():
        flask_migrate.upgrade()
    timings["migrations"] = time.perf_counter() - began

    with psycopg.connect(conninfo) as connection:
        if connection.execute("SELECT EXISTS (SELECT 1 FROM tickets)").fetchone()[0]:
            sys.exit("the database already has tickets: rerun with --reset")

    step = time.perf_counter()
    tenants = create_tenants(app, args.tenants, args.agents)
    timings["tenants and agents (services)"] = time.perf_counter() - step

    counts = split_tickets(args.tenants, args.tickets, args.big_tenant_tickets)
    with psycopg.connect(conninfo) as connection, connection.cursor() as cursor:
        first_ticket = reserve_ids(cursor, "tickets", args.tickets)
        first_customer = reserve_ids(cursor, "customers", args.tickets)
        first_entry = reserve_ids(cursor, "thread_entries", args.tickets * args.messages_per_ticket)
        indexes = secondary_indexes(cursor)
        keys = foreign_keys(cursor)
        for table, name, _ in keys:
            cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        for name, _ in indexes:
            cursor.execute(f"DROP INDEX {name}")
    plans, offset = [], 0
    for index, ((tenant_id, slug, prefix, currency, next_number, agents), count) in enumerate(
        zip(tenants, counts, strict=True)
    ):
        plans.append(
            TenantPlan(
                index=index,
                tenant_id=tenant_id,
                slug=slug,
                prefix=prefix,
                currency=currency,
                first_number=next_number,
                tickets=count,
                agent_ids=agents,
                first_ticket_id=first_ticket + offset,
                first_customer_id=first_customer + offset,
                first_entry_id=first_entry + offset * args.messages_per_ticket,
                messages=args.messages_per_ticket,
            )
        )
        offset += count

    now = datetime.now(UTC)
    step = time.perf_counter()
    try:
        with ThreadPoolExecutor(max_workers=args.threads) as pool:
            # Biggest first, so the pool's tail is short.
            ordered = sorted(plans, key=lambda plan: -plan.tickets)
            results = list(pool.map(lambda plan: load_tenant(conninfo, plan, now, args.seed), ordered))
    finally:
        timings["COPY customers, tickets, thread entries"] = time.perf_counter() - step
        step = time.perf_counter()
        timings["re-create indexes"], timings["re-add foreign keys (validating)"] = restore_schema(
            conninfo, indexes, keys, args.threads
        )
    for result in results:
        print(
            f"  {result.slug}: {result.tickets:>9,} tickets, {result.customers:>9,} customers"
            f" in {result.seconds:6.1f} s"
        )

    step = time.perf_counter()
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute("VACUUM (ANALYZE) customers, tickets, thread_entries, users, tenant_settings")
        size = connection.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()[0]
        totals = connection.execute(
            "SELECT (SELECT count(*) FROM tickets), (SELECT count(*) FROM customers),"
            " (SELECT count(*) FROM thread_entries)"
        ).fetchone()
    timings["VACUUM ANALYZE"] = time.perf_counter() - step
    timings["total"] = time.perf_counter() - began

    print(f"loaded {totals[0]:,} tickets, {totals[1]:,} customers, {totals[2]:,} thread entries; db {size}")
    print(f"big tenant {BIG_SLUG}: {counts[0]:,} tickets; agents agent0..agent{args.agents - 1}@<slug>.test")
    for name, seconds in timings.items():
        print(f"  {name:<42} {seconds:8.1f} s")
    rate = args.tickets / timings["COPY customers, tickets, thread entries"]
    print(f"  COPY rate: {rate:,.0f} tickets/s (with their customers and thread entries)")


if __name__ == "__main__":
    main()
