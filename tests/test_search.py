"""Full-text search (issue 17, section 2): the queue's and the API's ``q`` find tickets
by what was said on them, in Chinese (no spaces) and in English, with the matching
snippet, and never another tenant's ticket."""

import importlib.util
import itertools
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, literal_column, select

from crm.auth.models import User
from crm.tickets import queue, search, staff_actions
from crm.tickets import service as tickets
from crm.tickets.models import EntryKind, ThreadEntry, Ticket
from tests.conftest import acting_for, requires_postgres
from tests.test_api import call, make_key
from tests.test_ticket_service import refund_request
from tests.test_workspace import references

ROOT = Path(__file__).resolve().parent.parent
nonces = itertools.count()
SNIPPET_RE = re.compile(r'<div class="queue-snippet[^"]*">(.*?)</div>', re.S)


def test_chinese_text_is_cut_into_pairs_and_other_text_into_folded_words():
    assert search.tokens("申请退款") == ["申请", "请退", "退款", "款"]
    assert search.tokens("退") == ["退"]
    assert search.tokens("ＲＦ-１００９ Café REFUNDED") == ["rf", "1009", "cafe", "refunded"]
    assert search.tokens("号码abc停用") == ["号码", "码", "abc", "停用", "用"]
    query = search.tsquery_literal(search.parse("退款 refund 49 款"), 7)
    assert query == "('7:退款') & '7:refund':* & ('7:49') & '7:款':*"
    assert search.fts5_query(search.parse("剩余余额")) == '"剩余 余余 余额"'
    # Whatever is typed, only letters and digits reach the database's query language.
    assert search.fts5_query(search.parse("\" OR * NEAR( ) -- ' :* & |")) == '"or" AND "near"*'


def migration_module():
    path = ROOT / "migrations" / "versions" / "0040_ticket_search.py"
    spec = importlib.util.spec_from_file_location("search_migration", path)
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    return migration


def test_the_migration_indexes_existing_tickets_as_the_app_does():
    """The migration carries its own copy of the tokenizer (a migration stands alone)."""
    migration = migration_module()
    text = "您好，我要申请退款：ＲＦ-1009 was charged TWICE, café 号码已停用。" * 3
    assert migration.tokens(text) == search.tokens(text)
    vector = search.tsvector_literal(search.tokens(text), 7)
    assert migration.tsvector_literal(search.tokens(text), 7) == vector and vector.startswith(
        "'7:您好':1,20,39 "
    )
    assert set(migration.INDEXED_KINDS) == set(search.INDEXED_KINDS)


@pytest.fixture
def searched(app, client, signed_in):
    """A tenant with an agent signed in on ``client``, its tickets, and a search."""
    tenant, agent = signed_in("agent")

    def queue(q: str, **args) -> tuple[list[str], list[str]]:
        page = client.get(f"/t/{tenant.slug}/tickets", query_string={"view": "all", "q": q, **args})
        assert page.status_code == 200, page.text
        return references(page), SNIPPET_RE.findall(page.text)

    return tenant, agent, queue


@dataclass(frozen=True)
class Made:
    number: int
    reference: str


def new_ticket(app, tenant, description: str) -> Made:
    with acting_for(app, tenant) as session:
        request = refund_request(description=description)
        ticket = tickets.submit_refund_request(request, nonce=f"search-{next(nonces)}", ip=None).ticket
        made = Made(ticket.number, ticket.reference)
        session.commit()
        return made


def add_note(app, tenant, agent_id: int, number: int, text: str) -> None:
    with acting_for(app, tenant) as session:
        ticket = session.scalar(select(Ticket).where(Ticket.number == number))
        staff_actions.add_note(ticket, text, user=session.get(User, agent_id), ip=None)
        session.commit()


def test_a_two_character_chinese_word_is_found_in_the_request_a_note_or_a_call(app, searched):
    tenant, agent, queue = searched
    request = new_ticket(app, tenant, description="我的号码已停用，请帮忙退款。")
    note = new_ticket(app, tenant, description="账单有问题。")
    other = new_ticket(app, tenant, description="想咨询一下套餐。")
    add_note(app, tenant, agent.id, note.number, "客户来电说已经申请退款两次")
    assert queue("退款")[0] == [request.reference, note.reference]
    assert queue("套餐")[0] == [other.reference]
    assert queue("退款 两次")[0] == [note.reference]  # every word, anywhere on the ticket
    assert queue("退")[0] == [request.reference, note.reference]  # one character: as a prefix
    assert queue("请帮忙退款")[0] == [request.reference]  # a longer word: its characters in a row
    assert queue("停用退款")[0] == []  # both pairs are there, but not in a row


def test_english_words_are_found_caseless_by_their_start(app, searched):
    tenant, _agent, queue = searched
    charged = new_ticket(app, tenant, description="I was CHARGED twice for the same number.")
    new_ticket(app, tenant, description="Please close my account.")
    assert queue("charge")[0] == [charged.reference]
    assert queue("Twice Charged")[0] == [charged.reference]
    assert queue("ｔｗｉｃｅ")[0] == [charged.reference]  # typed full-width
    assert queue("charge refund")[0] == []


def test_results_show_the_matching_words_escaped(app, searched):
    tenant, _agent, queue = searched
    long_text = "前面的话" * 30 + "<script>alert(1)</script> 这是重复扣费，请退款。" + "后面的话" * 30
    ticket = new_ticket(app, tenant, description=long_text)
    found, snippets = queue("重复扣费")
    assert found == [ticket.reference]
    (snippet,) = snippets
    assert "<mark>重复扣费</mark>" in snippet
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in snippet and "<script>" not in snippet
    assert snippet.startswith("…") and snippet.endswith("…") and len(snippet) < 400
    # A search by reference shows no snippet: nothing was said to match.
    assert queue(ticket.reference) == ([ticket.reference], [])


def test_the_queues_filters_still_apply_and_pages_follow(app, client, searched):
    tenant, _agent, queue = searched
    made = [new_ticket(app, tenant, description=f"第{n}次申请退款") for n in range(3)]
    assert queue("退款", view="resolved")[0] == []  # none is resolved
    assert queue("退款", view="all", sort="newest")[0] == [t.reference for t in reversed(made)]


def test_another_tenants_words_are_never_found(app, client, searched, make_tenant):
    tenant, _agent, queue = searched
    other = make_tenant()
    new_ticket(app, other, description="机密：这位客户要求退款。")
    mine = new_ticket(app, tenant, description="一般问题")
    assert queue("退款") == ([], [])
    assert queue("机密") == ([], [])
    assert queue("一般")[0] == [mine.reference]


def test_the_api_finds_tickets_by_their_words_with_the_snippet(app, client, make_tenant):
    tenant = make_tenant()
    ticket = new_ticket(app, tenant, description="号码被停用，要求退还余额")
    new_ticket(app, make_tenant(), description="另一家的退还余额")
    key = make_key(app, tenant, scopes="tickets:read")
    response = call(client, "GET", tenant, "/tickets?q=%E9%80%80%E8%BF%98", key)
    assert response.status_code == 200
    (item,) = response.json["items"]
    assert item["reference"] == ticket.reference
    assert item["snippet"] == {"before": "号码被停用，要求", "match": "退还", "after": "余额"}


@pytest.mark.parametrize("q", ['"', "NEAR(", "* OR", "' & | !", "退" * 200, ":*", "-", "（）"])
def test_search_text_that_is_query_syntax_is_only_text(app, searched, q):
    tenant, _agent, queue = searched
    new_ticket(app, tenant, description="退款 NEAR")
    queue(q)


def test_a_search_the_form_refuses_says_so(app, client, signed_in):
    tenant, _agent = signed_in("agent")
    for q, message in (("\x00退款", "control character"), ("退" * 201, "200")):
        page = client.get(f"/t/{tenant.slug}/tickets", query_string={"q": q})
        assert page.status_code == 400 and message in page.text


@pytest.mark.parametrize("sort", ["oldest", "newest", "due"])
def test_pages_are_whole_where_the_probe_ends_and_the_index_takes_over(app, make_tenant, monkeypatch, sort):
    """A text search reads the first tickets in page order, then asks the index: pages
    come out the same either side of that line (made 2 tickets long here)."""
    monkeypatch.setattr(queue, "TEXT_PROBE_ROWS", 2)
    tenant = make_tenant()
    words = ["退款", "咨询", "退款", "咨询", "咨询", "退款", "退款", "咨询", "退款"]
    made = [new_ticket(app, tenant, description=f"申请{word}") for word in words]
    expected = [t.number for t, word in zip(made, words, strict=True) if word == "退款"]
    if sort == "newest":
        expected.reverse()
    with acting_for(app, tenant):
        seen, after = [], None
        while True:
            page = queue.queue_page(
                queue.QueueQuery(view="all", q="退款", sort=sort),
                user_id=0,
                country="CN",
                after=after,
                limit=2,
            )
            seen += [ticket.number for ticket in page.tickets]
            if page.next_cursor is None:
                break
            after = page.next_cursor
    if sort == "due":  # every ticket's deadline is the same length: the order is the ids'
        assert sorted(seen) == sorted(expected) and len(set(seen)) == len(seen)
    else:
        assert seen == expected


def distinct_pairs(step: int, length: int = 19_990) -> str:
    """Chinese text whose every pair of characters is new: character i is the
    (i × step)-th ideograph, so each pair is (a, a + step)."""
    return "".join(chr(0x4E00 + (i * step) % 20_992) for i in range(length))


@requires_postgres
def test_a_new_ticket_is_written_with_its_request_indexed_once_and_later_text_joins_it(
    app, make_tenant, make_user
):
    """The request's terms go in with the ticket's INSERT, not again with its message."""
    tenant = make_tenant()
    agent = make_user(tenant, "agent")
    ticket = new_ticket(app, tenant, description="申请退款 refund")

    def stored() -> str:
        with acting_for(app, tenant) as session:
            return session.scalar(
                select(literal_column("search_vector::text")).where(Ticket.number == ticket.number)
            )

    assert stored() == "'%s:refund':5 '%s:款':4 '%s:申请':1 '%s:请退':2 '%s:退款':3" % ((tenant.id,) * 5)
    add_note(app, tenant, agent.id, ticket.number, "发票")
    assert stored().count(f"'{tenant.id}:申请':1 ") == 1 and f"'{tenant.id}:发票':" in stored()


def test_a_ticket_with_more_text_than_the_index_holds_still_takes_every_message(app, make_tenant, make_user):
    """A tsvector holds 1 MB of terms; eight notes of 20,000 characters, every pair new,
    would pass it. Every note is kept; the terms beyond the ticket's limit are not searched."""
    tenant = make_tenant()
    agent = make_user(tenant, "agent")
    ticket = new_ticket(app, tenant, description="第一条：发票抬头")
    for step in (3, 5, 7, 9, 11, 13, 15, 17):
        add_note(app, tenant, agent.id, ticket.number, distinct_pairs(step))
    with acting_for(app, tenant) as session:
        notes = session.scalar(
            select(func.count()).select_from(ThreadEntry).where(ThreadEntry.kind == EntryKind.INTERNAL_NOTE)
        )
        assert notes == 8
        found = queue.queue_page(queue.QueueQuery(view="all", q="抬头"), user_id=agent.id, country="CN")
        assert [t.number for t in found.tickets] == [ticket.number]
    terms = search.tokens(distinct_pairs(3)) + search.tokens(distinct_pairs(5))
    assert len(set(terms)) > search.MAX_TERMS_PER_TICKET
    capped = search.tsvector_literal(terms, 9)
    assert capped.count("':") == search.MAX_TERMS_PER_TICKET
    assert migration_module().tsvector_literal(terms, 9) == capped
