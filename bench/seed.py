"""Loads a realistic desk into PostgreSQL for the benchmarks, at volume.

Tenants are created through the app's own services (``create_tenant``, so each has its
settings and an audit chain; ``create_user`` for its agents). Customers, tickets and one
inbound thread entry per ticket are then bulk-loaded with psycopg ``COPY``, one tenant
per worker thread, and the tables are ANALYZEd.

Raw SQL is deliberate in this file: COPY, reserving id ranges from the sequences, and
dropping the tables' secondary indexes and foreign keys during the load, then re-creating
them from their own catalogue definitions (so the schema ends exactly as the migrations
made it, and re-adding each foreign key checks every loaded row in one pass). Writing a
million tickets through ``submit_refund_request`` would take hours. The bulk rows carry
no audit events: each tenant's chain holds what the services recorded (its creation and
its agents), so ``audit verify`` still passes.

    .venv/bin/python bench/seed.py \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/ledgerdesk_perf \\
        --tenants 10 --tickets 1000000 --big-tenant-tickets 100000 [--threads 4] [--reset]

Tenant slugs are ``perf-00`` (the big tenant) … ``perf-NN``; each has agents
``agent0@perf-NN.test`` … with the password ``AGENT_PASSWORD`` below.
"""

import argparse
import math
import random
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
                    )
                )
                by_staff = channel in ("phone", "email", "regulator_referral")
                entries.append(
                    (
                        plan.first_entry_id + serial,
                        plan.tenant_id,
                        ticket_id,
                        "inbound_message",
                        "staff" if by_staff else "customer",
                        (assignee or agents[serial % len(agents)]) if by_staff else None,
                        self.description(reason, locale, amount_minor),
                        "{}",
                        created_at,
                    )
                )
            yield customers, tickets, entries


CUSTOMER_COLUMNS = ("id", "tenant_id", "name", "phone", "email", "account_ref", "locale", "created_at")
TICKET_COLUMNS = (
    "id", "tenant_id", "number", "reference", "kind", "channel", "priority", "status", "reason",
    "customer_id", "assignee_id", "account_ref", "purchase_date", "amount_minor", "currency",
    "respond_by", "needs_manager", "created_at", "updated_at", "resolved_at",
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
    rows); returns the seconds each took."""
    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, min(threads, 2))) as pool:
        list(pool.map(lambda index: build_index(conninfo, index[1]), indexes))
    indexed = time.perf_counter()
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
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seed", type=int, default=20261128)
    parser.add_argument("--reset", action="store_true", help="drop and recreate the database first")
    args = parser.parse_args()

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
        first_entry = reserve_ids(cursor, "thread_entries", args.tickets)
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
                first_entry_id=first_entry + offset,
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
