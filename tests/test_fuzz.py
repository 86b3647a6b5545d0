"""Hostile values sent to every public form and every query parameter of the staff pages:
never a 500, and a refused form writes nothing (issue 10, finding 4).

The staff pages and the parameters each one reads are found, not listed: every GET rule
under ``/t/<tenant>/`` in the app's URL map, and the names its view reads from
``request.args`` (directly or through a form built on it). A new page or parameter is
fuzzed without anyone remembering to add it here.

Bounded for CI: a fixed number of examples per surface, derandomised (the same examples
on every run, no example database), no deadline (PostgreSQL is slower than SQLite).
"""

import functools
import inspect
import itertools
import os
import re
import typing
from collections.abc import Callable
from datetime import date
from io import BytesIO
from urllib.parse import quote, urlencode

import pytest
from flask import Flask
from flask_wtf import FlaskForm
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from crm.audit.models import AuditEvent
from crm.audit.service import Actor
from crm.customers.models import Customer
from crm.dnc.models import DoNotContact
from crm.leads import intake
from crm.leads.models import Consent, Lead, LeadRequest
from crm.policies.models import PolicyVersion
from crm.provisioning.models import TenantSettings
from crm.tickets import canned
from crm.tickets.models import Status, ThreadEntry, Ticket
from tests.conftest import CSRF_RE, acting_for
from tests.test_policies import draft, published
from tests.test_portal import PDF, TOKEN_RE, good_fields, submitted

# ``bench/fuzz.py`` sets it to run many times the examples, random ones, for as long as
# it is given; CI runs the fixed, bounded set.
SCALE = int(os.environ.get("FUZZ_SCALE", "1"))


def fuzz(max_examples: int):
    """Hypothesis, bounded and repeatable. The examples share the test's desk on purpose:
    a refusal must leave it as it was."""
    return settings(
        max_examples=max_examples * SCALE,
        deadline=None,
        derandomize=SCALE == 1,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


TEXT = [
    # control characters, line breaks and odd Unicode
    "\x00",
    "a\x00b",
    "\x1b[31m",
    "\x7f",
    "\r\n",
    "x\r\nSet-Cookie: a=b",
    "\u2028",
    "\u202e",
    "\ufeff",
    "\u200b",
    "🙂" * 30,
    "李雷" * 150,
    " ",
    "",
    # very long
    "x" * 5_000,
    # wrong types and injection attempts
    "<script>alert(1)</script>",
    "' OR '1'='1",
    "%00",
    "%0d%0a",
    "../../etc/passwd",
    "//evil.example",
    "javascript:alert(1)",
    "true",
    "null",
    "[]",
    "{}",
]
NUMBERS = [  # at and past INTEGER, BIGINT and 2**64; odd spellings
    "-1",
    "0",
    "-0",
    "2147483647",
    "2147483648",
    "-2147483649",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "18446744073709551616",
    "9" * 400,
    "1_000",
    "0x1F",
    "١٢٣",
]
DECIMALS = [
    "1E+999999999",
    "-1E+999999999",
    "1E-999999999",
    "NaN",
    "sNaN",
    "Infinity",
    "-Infinity",
    "199.999",
    "0.001",
    "-5.00",
    "1e15",
]
DATES = [  # at and past the extremes
    "0001-01-01",
    "9999-12-31",
    "10000-01-01",
    "1899-12-31",
    "2200-12-31",
    "2026-02-30",
    "2026-13-01",
    "-2026-01-01",
    "2026-10-01T25:61",
]
numbers = st.one_of(st.sampled_from(NUMBERS), st.integers(min_value=-(2**80), max_value=2**80).map(str))
decimals = st.one_of(
    st.sampled_from(DECIMALS),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.builds("{}E{:+d}".format, st.integers(-99, 99), st.integers(-(10**9), 10**9)),
)
dates = st.one_of(st.sampled_from(DATES), st.dates(min_value=date(1, 1, 1)).map(str))
hostile = st.one_of(st.sampled_from(TEXT), st.text(max_size=40), numbers, decimals, dates)
# Percent-encoded bytes that are not UTF-8: a lone continuation byte, a truncated
# sequence, an overlong slash, a UTF-16 surrogate, past U+10FFFF, bytes UTF-8 never uses.
INVALID_UTF8 = ["%ff", "%fe%ff", "%80", "a%80b", "%c3%28", "%e2%82", "%c0%af", "%ed%a0%80", "%f4%90%80%80"]
encoded = st.one_of(hostile.map(lambda value: quote(value, safe="")), st.sampled_from(INVALID_UTF8))
# What a field holds, by its name, so its hostile values are often of the kind it parses.
KIND_OF_FIELD = {
    "amount": decimals,
    "purchase_date": dates,
    "since": dates,
    "until": dates,
    "before": numbers,
    "after": numbers,
    "a": numbers,
    "b": numbers,
    "canned": numbers,
    "assignee": numbers,
    "duration_seconds": numbers,
    "customer_id": numbers,
    "assignee_id": numbers,
    "trial_starts_on": dates,
    "trial_ends_on": dates,
}


def hostile_for(name: str) -> st.SearchStrategy[str]:
    kind = KIND_OF_FIELD.get(name.rpartition("-")[2])  # a page form's field: "call-duration_seconds"
    return st.one_of(kind, hostile) if kind is not None else hostile


file_contents = st.sampled_from([PDF, b"", b"MZ\x90\x00" + b"\x00" * 64, "第一行\n".encode("gb18030")])
uploads = st.lists(st.tuples(hostile, file_contents), max_size=2)

# Addresses of the fuzzing clients, away from 127.0.0.1: the per-address sign-in and form
# limits they run into must not slow down the rest of the suite.
FUZZ_ADDRESS = "198.51.100.{}"


def rows(app: Flask, tenant) -> dict[str, int]:
    with acting_for(app, tenant) as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model))
            for model in (Ticket, ThreadEntry, Customer)
        }


def assert_not_a_server_error(response, what: str) -> None:
    assert response.status_code < 500, f"{response.status_code} for {what}"


def one_or_two_of(names: list[str]) -> st.SearchStrategy[dict]:
    """One or two of ``names`` with hostile values (``None``: left out). Input wrong in
    only one place gets past the first check to the deeper ones."""
    field = st.sampled_from(sorted(names)).flatmap(
        lambda name: st.tuples(st.just(name), st.one_of(hostile_for(name), st.none()))
    )
    return st.lists(field, min_size=1, max_size=2).map(dict)


def raw_pairs(names: list[str]) -> st.SearchStrategy[list[tuple[str, str]]]:
    """Encoded ``name=value`` pairs as a hostile client writes them: values hostile or not
    UTF-8 at all, and a name often twice (which one wins must not matter)."""
    name = st.sampled_from(sorted(names))
    once = st.tuples(name, encoded).map(lambda pair: [pair])
    twice = st.tuples(name, encoded, encoded).map(lambda t: [(t[0], t[1]), (t[0], t[2])])
    return st.lists(st.one_of(once, twice), min_size=1, max_size=2).map(
        lambda parts: list(itertools.chain(*parts))
    )


def raw_body(good: dict[str, str], pairs: list[tuple[str, str]]) -> str:
    """The good fields urlencoded, those named in ``pairs`` replaced by its values."""
    replaced = {name for name, _ in pairs}
    kept = [(name, value) for name, value in good.items() if name not in replaced]
    return "&".join([urlencode(kept), *(f"{name}={value}" for name, value in pairs)])


def mostly_good(good: dict[str, str]) -> st.SearchStrategy[dict]:
    """The good fields with one or two of them hostile or left out."""
    return one_or_two_of(list(good)).map(
        lambda changed: {name: value for name, value in {**good, **changed}.items() if value is not None}
    )


def with_files(data: dict, files: list[tuple[str, bytes]]) -> dict:
    if files:
        data["attachments"] = [(BytesIO(content), name) for name, content in files]
    return data


def fuzzing_client(app: Flask, n: int):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = FUZZ_ADDRESS.format(n)
    return client


@pytest.fixture
def public_desk(app, make_tenant):
    """A tenant whose form takes as many submissions as the examples send."""
    tenant = make_tenant()
    with acting_for(app, tenant) as session:
        session.execute(update(TenantSettings).values(form_submissions_per_hour=100_000))
        session.commit()
    return tenant


# --- public forms ------------------------------------------------------------------------


def test_the_refund_form_survives_hostile_values_in_every_field(app, public_desk):
    client = fuzzing_client(app, 1)
    url = f"/t/{public_desk.slug}/refund"
    fresh = "(the page's own token)"
    good = {**good_fields(), "currency": "CNY", "website": "", "submission_token": fresh}

    statuses: set[int] = set()

    @fuzz(50)
    @given(fields=mostly_good(good), files=uploads)
    def send(fields: dict, files: list):
        page = client.get(url)
        tokens = {"csrf_token": CSRF_RE.search(page.text).group(1)}
        if fields.get("submission_token") == fresh:
            fields = {**fields, "submission_token": TOKEN_RE.search(page.text).group(1)}
        before = rows(app, public_desk)
        response = client.post(url, data=with_files({**tokens, **fields}, files))
        statuses.add(response.status_code)
        assert_not_a_server_error(response, f"POST {url} {fields!r}")
        after = rows(app, public_desk)
        if response.status_code == 302:
            assert after["tickets"] - before["tickets"] <= 1
        else:
            assert after == before, f"{response.status_code} wrote rows for {fields!r}"

    send()
    assert 302 in statuses, statuses  # the fuzzing reached a valid form too


@pytest.mark.parametrize("form", ["refund", "trial"])
def test_the_public_forms_survive_invalid_utf8_and_repeated_fields(app, public_desk, form):
    """Bodies written by hand: a field twice, or bytes that are not UTF-8. A 4xx that
    writes nothing, or an accepted form that makes exactly one record."""
    client = fuzzing_client(app, 5)
    url = f"/t/{public_desk.slug}/{form}"
    good = {**good_fields(), "currency": "CNY"} if form == "refund" else TRIAL_FIELDS
    count = rows if form == "refund" else lead_rows

    @fuzz(40)
    @given(pairs=raw_pairs([*good, "csrf_token", "submission_token"]))
    def send(pairs: list[tuple[str, str]]):
        page = client.get(url)
        tokens = {
            "csrf_token": CSRF_RE.search(page.text).group(1),
            "submission_token": TOKEN_RE.search(page.text).group(1),
        }
        before = count(app, public_desk)
        body = raw_body({**good, **tokens}, pairs)
        response = client.post(url, data=body, content_type="application/x-www-form-urlencoded")
        assert_not_a_server_error(response, f"POST {url} {body!r}")
        after = count(app, public_desk)
        changed = {table for table in after if after[table] != before[table]}
        if response.status_code != 302:
            assert not changed, f"{response.status_code} wrote rows for {body!r}"
        else:
            assert all(after[table] - before[table] <= 1 for table in ("tickets", "leads") if table in after)

    send()


TRIAL_FIELDS = {
    "name": "韩梅梅",
    "company": "梅梅外呼",
    "phone": "13900139000",
    "email": "meimei@example.test",
    "need": "20 个坐席",
    "consent_contact": "y",
    "consent_marketing": "y",
    "utm_source": "baidu",
    "utm_medium": "cpc",
    "utm_campaign": "autumn",
    "website": "",
}


def lead_rows(app: Flask, tenant) -> dict[str, int]:
    with acting_for(app, tenant) as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model))
            for model in (Lead, LeadRequest, Consent, DoNotContact)
        }


def test_the_trial_form_survives_hostile_values_in_every_field(app, public_desk):
    client = fuzzing_client(app, 3)
    url = f"/t/{public_desk.slug}/trial"
    fresh = "(the page's own token)"
    good = {**TRIAL_FIELDS, "submission_token": fresh}
    statuses: set[int] = set()

    @fuzz(50)
    @given(fields=mostly_good(good))
    def send(fields: dict):
        page = client.get(url)
        tokens = {"csrf_token": CSRF_RE.search(page.text).group(1)}
        if fields.get("submission_token") == fresh:
            fields = {**fields, "submission_token": TOKEN_RE.search(page.text).group(1)}
        before = lead_rows(app, public_desk)
        response = client.post(url, data={**tokens, **fields})
        statuses.add(response.status_code)
        assert_not_a_server_error(response, f"POST {url} {fields!r}")
        after = lead_rows(app, public_desk)
        if response.status_code == 302:
            assert after["leads"] - before["leads"] <= 1
        else:
            assert after == before, f"{response.status_code} wrote rows for {fields!r}"

    send()
    assert 302 in statuses, statuses


@pytest.mark.parametrize("action", ["call", "note", "email", "stage", "assign", "consent"])
def test_the_lead_actions_survive_hostile_values(app, client, signed_in, action):
    tenant, _admin = signed_in("admin")
    with acting_for(app, tenant) as session:
        lead = intake.receive(
            intake.LeadDetails(name="Han Meimei", phone="13900139000", email="mm@example.test"),
            source="staff",
            actor=Actor.operator("test"),
            ip=None,
            proofs=[(None, True, "signed form 1")],
        ).lead
        session.commit()
        reference = lead.reference
    url = f"/t/{tenant.slug}/leads/{reference}"
    fields = {
        "call": ["direction", "outcome", "duration_seconds", "note"],
        "note": ["body"],
        "email": ["subject", "body"],
        "stage": ["stage", "lost_reason", "trial_starts_on", "trial_ends_on", "customer_id"],
        "assign": ["assignee_id"],
        "consent": ["evidence_ref"],
    }[action]

    @fuzz(20)
    @given(changed=one_or_two_of([f"{action}-{name}" for name in fields]))
    def send(changed: dict):
        page = client.get(url)
        data = {"csrf_token": CSRF_RE.search(page.text).group(1)}
        data.update({name: value for name, value in changed.items() if value is not None})
        response = client.post(f"{url}/{'consent' if action == 'consent' else action}", data=data)
        assert_not_a_server_error(response, f"POST {action} {changed!r}")

    send()


@pytest.mark.parametrize("action", ["reply", "withdraw", "not-satisfied"])
def test_the_tracking_page_survives_hostile_values(app, make_tenant, action):
    tenant = make_tenant()
    submission = submitted(app, tenant)
    if action == "not-satisfied":  # only a resolved request can be found wanting
        with acting_for(app, tenant) as session:
            session.execute(update(Ticket).values(status=Status.RESOLVED))
            session.commit()
    client = fuzzing_client(app, 2)
    page_url = f"/t/{tenant.slug}/track/{submission.tracking_token}"
    url = f"{page_url}/{action}"
    csrf = CSRF_RE.search(client.get(page_url).text).group(1)

    statuses: set[int] = set()

    @fuzz(20)
    @given(fields=mostly_good({"body": "Here is the receipt.", "junk": ""}), files=uploads)
    def send(fields: dict, files: list):
        before = rows(app, tenant)
        response = client.post(url, data=with_files({"csrf_token": csrf, **fields}, files))
        statuses.add(response.status_code)
        assert_not_a_server_error(response, f"POST {url} {fields!r}")
        if response.status_code != 302:
            assert rows(app, tenant) == before, f"{response.status_code} wrote rows for {fields!r}"

    send()
    assert 302 in statuses, statuses  # the fuzzing reached a valid form too


def test_the_login_form_survives_hostile_values(app, make_tenant, make_user):
    tenant = make_tenant()
    user = make_user(tenant, "agent")
    client = fuzzing_client(app, 3)
    url = f"/t/{tenant.slug}/login"
    csrf = CSRF_RE.search(client.get(url).text).group(1)

    statuses: set[int] = set()

    @fuzz(25)
    @given(
        fields=mostly_good({"email": user.email, "password": "not the password"}),
        next_page=hostile,
    )
    def send(fields: dict, next_page: str):
        before = rows(app, tenant)
        address = f"{url}?{urlencode({'next': next_page})}"
        response = client.post(address, data={"csrf_token": csrf, **fields})
        statuses.add(response.status_code)
        assert_not_a_server_error(response, f"POST {address} {fields!r}")
        assert response.status_code != 302, "signed in with a wrong password"
        assert rows(app, tenant) == before

    send()
    assert 401 in statuses, statuses  # the form was read, not refused whole


def test_the_public_policy_pages_and_receipt_survive_hostile_addresses(app, make_tenant):
    tenant = make_tenant()
    published(app, tenant)
    client = fuzzing_client(app, 4)

    @fuzz(40)
    @given(
        path=st.sampled_from(["/policy", "/policy/history", "/policy/{value}", "/refund/receipt/{value}"]),
        value=hostile,
        junk=hostile,
    )
    def visit(path: str, value: str, junk: str):
        url = f"/t/{tenant.slug}{path.format(value=quote(value, safe=''))}?{urlencode({'v': junk})}"
        assert_not_a_server_error(client.get(url), url)

    visit()


POLICY_DRAFT = {
    "text_en": "# Refunds\n\nWe refund unused balance.",
    "text_zh_CN": "# 退款\n\n未使用的余额予以退还。",
    "cooling_off_days": "7",
    "prorate_unused_balance": "y",
    "non_refundable_items": "Number activation fee | 50.00",
    "handling_fee_percent": "5",
    "handling_fee_cap": "30.00",
    "payout_days": "15",
    "required_evidence": "invoice",
}


@pytest.mark.parametrize("step", ["save", "publish"])
def test_the_policy_forms_survive_hostile_values(app, client, signed_in, step):
    tenant, _ = signed_in("manager")
    number = draft(app, tenant)
    url = f"/t/{tenant.slug}/admin/policies/{number}" + ("/publish" if step == "publish" else "")
    csrf = CSRF_RE.search(client.get(f"/t/{tenant.slug}/admin/policies/{number}").text).group(1)
    good = POLICY_DRAFT if step == "save" else {"effective_from": "2031-01-01T09:00", "confirm": "y"}

    statuses: set[int] = set()

    @fuzz(25)
    @given(fields=mostly_good(good))
    def send(fields: dict):
        before = policy_rows(app, tenant)
        response = client.post(url, data={"csrf_token": csrf, **fields})
        statuses.add(response.status_code)
        assert_not_a_server_error(response, f"POST {url} {fields!r}")
        if response.status_code != 302:
            assert policy_rows(app, tenant) == before, f"{response.status_code} wrote rows for {fields!r}"

    send()
    assert 302 in statuses, statuses  # the fuzzing reached a valid form too


def policy_rows(app: Flask, tenant) -> dict[str, int]:
    """The versions, and the audit events that say one changed."""
    with acting_for(app, tenant) as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model))
            for model in (PolicyVersion, AuditEvent)
        }


# --- staff pages: every GET, every query parameter -----------------------------------------

TENANT_PREFIX = "/t/<tenant>/"
ARGUMENT_RE = re.compile(r"<(?:[^:>]+:)?(\w+)>")


def staff_get_rules(app: Flask) -> list:
    """Every GET page under a tenant, but signing out."""
    rules = (
        rule
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith(TENANT_PREFIX) and "GET" in rule.methods and rule.endpoint != "auth.logout"
    )
    return sorted(rules, key=lambda rule: rule.rule)


def address_of(rule, value_of: Callable[[str], object]) -> str:
    """The rule's address with each ``<argument>`` replaced by ``value_of(argument)``."""
    return ARGUMENT_RE.sub(lambda match: quote(str(value_of(match.group(1))), safe=""), rule.rule)


def query_parameters_read_by(app: Flask, endpoint: str) -> set[str]:
    """The names a view reads from its query string: ``request.args.get("…")``,
    ``request.args["…"]``, ``query_int("…")``, the fields of a form built on
    ``request.args``, and the queue's kept parameters."""
    view = inspect.unwrap(app.view_functions[endpoint])
    source = inspect.getsource(view)
    names = set(re.findall(r'request\.args(?:\.get\(|\[)\s*"(\w+)"', source))
    names |= set(re.findall(r'query_int\(\s*"(\w+)"', source))
    for form_name in re.findall(r"([\w.]+)\(request\.args\)", source):
        module, *attributes = form_name.split(".")
        reader = functools.reduce(getattr, attributes, view.__globals__[module])
        # A form class, or a function that builds one and returns it first (read_period).
        built = reader if isinstance(reader, type) else typing.get_type_hints(reader)["return"]
        form_class = built if isinstance(built, type) else typing.get_args(built)[0]
        if not issubclass(form_class, FlaskForm):
            continue  # a helper that copies parameters, not a form
        with app.test_request_context():
            names |= set(form_class(formdata=None, meta={"csrf": False})._fields)
    if "QUEUE_PARAMS" in source:
        names |= set(view.__globals__["QUEUE_PARAMS"])
    return names


@pytest.fixture
def staff_desk(app, client, signed_in):
    """A signed-in admin's desk with one of everything a staff address names."""
    tenant, admin = signed_in("admin")
    ticket = submitted(app, tenant)
    policy_number = published(app, tenant)
    with acting_for(app, tenant) as session:
        reply = canned.create_canned(title="Thanks", body="Thank you.", actor=Actor.operator("test"))
        session.commit()
        reply_id = reply.id
    calendars = client.get(f"/t/{tenant.slug}/admin/calendars").text
    calendar = re.search(rf'href="/t/{tenant.slug}/admin/calendars/([^"/?]+)"', calendars)
    values = {
        "tenant": tenant.slug,
        "number": ticket.number,
        "attachment_id": 1,
        "user_id": admin.id,
        "reply_id": reply_id,
        "name": calendar.group(1) if calendar else "default",
        "token": ticket.tracking_token,
        "tree_size": 1,  # no checkpoint of that size: a 404, which is a good answer too
        "run_id": 1,  # likewise for an export
        "reference": "LD-1001",  # no such lead yet: a 404
        "activity_id": 1,
        "customer_id": 1,
        "entry_id": 1,
        "key_id": 1,
        "endpoint_id": 1,
        "delivery_id": 1,
        "call_id": 1,
        "message_id": 1,
        "view_id": 1,
        "action": "enable",
    }

    def value_for(rule) -> Callable[[str], object]:
        policy = rule.endpoint.startswith("policies.")
        return lambda name: policy_number if policy and name == "number" else values[name]

    return tenant, value_for


def fuzz_query(app: Flask, client, tenant, url: str, names: set[str]) -> None:
    """Hostile values, invalid UTF-8 and repeated names for the parameters ``url``'s view
    reads, and for one it does not."""

    @fuzz(15 if names else 3)
    @given(pairs=raw_pairs([*names, "x"]))
    def visit(pairs: list[tuple[str, str]]):
        before = rows(app, tenant)
        address = f"{url}?{raw_body({}, pairs)}"
        response = client.get(address)
        assert_not_a_server_error(response, address)
        assert "/login" not in response.headers.get("Location", ""), "signed out"
        assert rows(app, tenant) == before

    visit()


def test_every_staff_page_survives_hostile_query_parameters(app, client, staff_desk):
    tenant, value_for = staff_desk
    read: dict[str, set[str]] = {}
    for rule in staff_get_rules(app):
        read[rule.endpoint] = query_parameters_read_by(app, rule.endpoint)
        fuzz_query(app, client, tenant, address_of(rule, value_for(rule)), read[rule.endpoint])
    # What the probe used is among what was found.
    assert {"q", "view", "status", "kind", "priority", "reason", "assignee", "sort", "after"} <= read[
        "tickets.queue"
    ]
    assert {"actor", "action", "subject_id", "since", "until", "before"} <= read["audit.events"]
    assert {"a", "b"} <= read["policies.admin_compare"]
    assert {"before", "status"} <= read["notify.outbox"]
    assert {"canned", "into"} <= read["tickets.show"]


def test_every_argument_of_a_staff_address_survives_hostile_values(app, client, staff_desk):
    tenant, _ = staff_desk
    rules = [rule for rule in staff_get_rules(app) if set(rule.arguments) - {"tenant"}]

    @fuzz(60)
    @given(rule=st.sampled_from(rules), value=hostile)
    def visit(rule, value: str):
        url = address_of(rule, lambda name: tenant.slug if name == "tenant" else value)
        response = client.get(url)
        assert_not_a_server_error(response, url)
        assert "/login" not in response.headers.get("Location", ""), "signed out"

    visit()


def test_a_blank_page_cursor_is_the_first_page(app, client, signed_in):
    """Found by bench/fuzz.py: ``after=%0D%0A`` passed the form (Optional() takes a blank
    value as none) and then failed to decode: a 500."""
    tenant, _admin = signed_in("agent")
    for blank in ("%0D%0A", "%20", "%09"):
        assert client.get(f"/t/{tenant.slug}/tickets?after={blank}").status_code == 200, blank
