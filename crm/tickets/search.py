"""Full-text search of what was said on a ticket: its messages, notes, call logs and an
email's subject, in any language, Chinese included.

Chinese has no spaces, so text is cut into overlapping pairs of characters (bigrams, as
Lucene's CJK analyzer does), plus each run's last character alone: 申请退款 indexes as
申请 请退 退款 款, so a two-character word such as 退款 is one term, a longer one a
phrase of pairs, and a single character a prefix. Other scripts are cut into words,
caseless, accents removed, full-width forms folded (ＲＦ１００９ reads rf1009).

One index entry per ticket, kept up to date as thread entries are written (a flush
listener, in the same transaction):

- PostgreSQL: ``tickets.search_vector``, a ``tsvector`` with a GIN index, built from our
  tokens (never PostgreSQL's own parser, whose reading of CJK depends on the locale).
  Each token is written with its tenant's id (``7:退款``), so every tenant has lists of
  its own in the index and statistics of its own for the planner: a word common in
  other tenants' tickets costs nothing in a tenant that rarely uses it;
- SQLite: ``ticket_search``, an FTS5 table whose rowid is the ticket's id.

Neither is mapped by the ORM, so a ticket loaded for the queue never reads its index.
"""

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, cast, event, literal, literal_column, select, text
from sqlalchemy.dialects.postgresql import TSQUERY, TSVECTOR
from sqlalchemy.orm import Session

from crm.extensions import db
from crm.tickets.models import EntryKind, ThreadEntry, Ticket
from tenants import current_tenant_id

# What is searched: what people said, not what the desk generated.
INDEXED_KINDS = frozenset(
    {EntryKind.PUBLIC_REPLY, EntryKind.INTERNAL_NOTE, EntryKind.CALL_LOG, EntryKind.INBOUND_MESSAGE}
)
# Hiragana, katakana, CJK ideographs (and extension A, compatibility forms), Hangul.
CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
TOKEN = re.compile(rf"([{CJK}]+)|([^\W_{CJK}]+)")
MAX_WORD = 40  # longer "words" (hashes, base64) are cut; a search for one is cut alike
MAX_TEXT = 20_000  # characters of one entry indexed; an email's tail rarely matters
MAX_TERMS = 16
# PostgreSQL's limits on a tsvector: positions up to 16,383, at most 256 per lexeme,
# and 1 MB of lexemes, which a ticket's text must never reach (a message that would
# push it there would fail): 20,000 distinct terms of at most 45 bytes each stay under
# it. Text beyond them is kept, but not searched.
MAX_POSITION = 16_383
MAX_POSITIONS_PER_TOKEN = 255
MAX_TERMS_PER_TICKET = 20_000
SNIPPET_CONTEXT = 60  # characters either side of a match


def _fold(text: str) -> str:
    """Full-width to ASCII, lower case, accents off (café reads cafe)."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def tokens(text: str) -> list[str]:
    """The index terms of ``text``, in order."""
    found: list[str] = []
    for run, word in TOKEN.findall(_fold(text[:MAX_TEXT])):
        if word:
            found.append(word[:MAX_WORD])
        elif len(run) == 1:
            found.append(run)
        else:
            found.extend(run[i : i + 2] for i in range(len(run) - 1))
            found.append(run[-1])
    return found


@dataclass(frozen=True)
class Term:
    """One thing typed: a word (a prefix when long enough), a character (a prefix), or
    a Chinese phrase (its pairs, in order)."""

    tokens: tuple[str, ...]
    prefix: bool


def parse(q: str) -> list[Term]:
    """What a search for ``q`` asks of the text: every term, in any order."""
    terms = []
    for run, word in TOKEN.findall(_fold(q)):
        if word:
            # "ref" finds "refund"; a number or a two-letter word is matched whole.
            terms.append(Term((word[:MAX_WORD],), prefix=len(word) >= 3 and not word.isdigit()))
        elif len(run) == 1:
            terms.append(Term((run,), prefix=True))
        else:
            terms.append(Term(tuple(run[i : i + 2] for i in range(len(run) - 1)), prefix=False))
    return list(dict.fromkeys(terms))[:MAX_TERMS]


# --- PostgreSQL ---------------------------------------------------------------------------


def tsvector_literal(terms: Sequence[str], tenant_id: int) -> str:
    """``terms`` of a ticket of ``tenant_id`` as a tsvector's text form, with their
    positions (for phrases)."""
    positions: dict[str, list[int]] = {}
    for position, term in enumerate(terms, start=1):
        places = positions.get(term)
        if places is None:
            if len(positions) == MAX_TERMS_PER_TICKET:
                continue
            places = positions[term] = []
        if len(places) < MAX_POSITIONS_PER_TOKEN:
            places.append(min(position, MAX_POSITION))
    # Tokens are letters and digits only, so quoting needs no escapes.
    return " ".join(
        f"'{tenant_id}:{term}':{','.join(map(str, places))}" for term, places in positions.items()
    )


def tsquery_literal(terms: Sequence[Term], tenant_id: int) -> str:
    parts = []
    for term in terms:
        if term.prefix:
            parts.append(f"'{tenant_id}:{term.tokens[0]}':*")
        else:
            parts.append("(" + " <-> ".join(f"'{tenant_id}:{token}'" for token in term.tokens) + ")")
    return " & ".join(parts)


# --- SQLite -------------------------------------------------------------------------------


def fts5_query(terms: Sequence[Term]) -> str:
    parts = []
    for term in terms:
        phrase = '"' + " ".join(term.tokens) + '"'
        parts.append(phrase + "*" if term.prefix else phrase)
    return " AND ".join(parts)


# --- the index ----------------------------------------------------------------------------


def _postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def add_text(session: Session, texts: dict[tuple[int, int], list[str]], *, replace: bool = False) -> None:
    """Index more of each ticket's text (``texts`` by tenant and ticket id), or, with
    ``replace``, index only this text from now on."""
    connection = session.connection()
    for (tenant_id, ticket_id), parts in texts.items():
        terms = [token for part in parts for token in tokens(part)]
        if _postgres(session):
            # More text joins the index while the ticket's terms stay within the limit.
            value = (
                "CAST(:v AS tsvector)"
                if replace
                else "CASE WHEN length(search_vector) + length(CAST(:v AS tsvector)) <= :most "
                "THEN search_vector || CAST(:v AS tsvector) ELSE search_vector END"
            )
            connection.execute(
                text(f"UPDATE tickets SET search_vector = {value} WHERE tenant_id = :tenant AND id = :id"),
                {
                    "v": tsvector_literal(terms, tenant_id),
                    "most": MAX_TERMS_PER_TICKET,
                    "tenant": tenant_id,
                    "id": ticket_id,
                },
            )
            continue
        joined = " ".join(terms)
        if replace:
            connection.execute(text("DELETE FROM ticket_search WHERE rowid = :id"), {"id": ticket_id})
        elif connection.execute(
            text("UPDATE ticket_search SET tokens = tokens || ' ' || :t WHERE rowid = :id"),
            {"t": joined, "id": ticket_id},
        ).rowcount:
            continue
        connection.execute(
            text("INSERT INTO ticket_search (rowid, tokens) VALUES (:id, :t)"), {"id": ticket_id, "t": joined}
        )


def indexed_text(entry: ThreadEntry) -> str:
    """What of an entry is searched: a message's words, and an email's subject."""
    if entry.kind not in INDEXED_KINDS:
        return ""
    subject = entry.details.get("subject") if entry.kind == EntryKind.INBOUND_MESSAGE else None
    return f"{subject}\n{entry.body}" if subject else entry.body


def reindex(session: Session, ticket_ids: Iterable[int]) -> None:
    """Index these tickets anew from their thread as it stands (after an erasure)."""
    tickets = session.execute(select(Ticket.tenant_id, Ticket.id).where(Ticket.id.in_(list(ticket_ids))))
    texts: dict[tuple[int, int], list[str]] = {(tenant_id, ticket_id): [] for tenant_id, ticket_id in tickets}
    if not texts:
        return
    entries = session.scalars(
        select(ThreadEntry)
        .where(ThreadEntry.ticket_id.in_([ticket_id for _tenant, ticket_id in texts]))
        .order_by(ThreadEntry.id)
    )
    for entry in entries:
        texts[entry.tenant_id, entry.ticket_id].append(indexed_text(entry))
    add_text(session, texts, replace=True)


def index_on_insert(session: Session, ticket: Ticket, first_text: str) -> None:
    """Let a new ticket's INSERT carry the terms of ``first_text``, the message it is
    opened with, on PostgreSQL: an UPDATE of the row just written would write it and
    each of its indexes again."""
    if _postgres(session):
        ticket.search_vector = tsvector_literal(tokens(first_text), current_tenant_id())


def index_inserted(session: Session, ticket: Ticket, first_text: str) -> None:
    """Index ``first_text`` of a ticket just inserted, where its INSERT could not carry
    it (SQLite's index is a table of its own)."""
    if not _postgres(session):
        add_text(session, {(ticket.tenant_id, ticket.id): [first_text]})


@event.listens_for(Session, "after_flush")
def _index_new_entries(session: Session, _context) -> None:
    texts: dict[tuple[int, int], list[str]] = defaultdict(list)
    for instance in session.new:
        if isinstance(instance, ThreadEntry) and (body := indexed_text(instance)):
            texts[instance.tenant_id, instance.ticket_id].append(body)
    if texts:
        add_text(session, texts)


# --- searching ----------------------------------------------------------------------------


# The index on PostgreSQL, for a query to select or test (``matches``).
SEARCH_VECTOR = literal_column("tickets.search_vector", TSVECTOR)


@dataclass(frozen=True)
class TextQuery:
    """What ``q`` asks of the tickets' text, on the database in use."""

    terms: tuple[Term, ...]
    postgres: bool

    def matches(self, vector: ColumnElement = SEARCH_VECTOR) -> ColumnElement:
        """The condition on a ticket (on PostgreSQL, on its ``vector``)."""
        if self.postgres:
            query = cast(literal(tsquery_literal(self.terms, current_tenant_id())), TSQUERY)
            return vector.bool_op("@@")(query)
        matches = text("SELECT rowid FROM ticket_search WHERE ticket_search MATCH :text_query").bindparams(
            text_query=fts5_query(self.terms)
        )
        return Ticket.id.in_(matches)


def text_query(q: str) -> TextQuery | None:
    """The text search ``q`` asks for (None when it has no words)."""
    terms = parse(q)
    return TextQuery(tuple(terms), _postgres(db.session)) if terms else None


@dataclass(frozen=True)
class Snippet:
    """Where a ticket's text matched, in three parts for the page to escape."""

    before: str
    match: str
    after: str


def _pattern(terms: Sequence[Term]) -> re.Pattern[str]:
    """Any term as typed, in the original text (a phrase: its characters in a row)."""
    alternatives = []
    for term in terms:
        surface = term.tokens[0] + "".join(token[-1] for token in term.tokens[1:])
        alternatives.append(re.escape(surface))
    return re.compile("|".join(sorted(alternatives, key=len, reverse=True)), re.IGNORECASE)


def snippets(ticket_ids: Sequence[int], q: str) -> dict[int, Snippet]:
    """For each ticket that has one, the first place its text shows a term of ``q``."""
    terms = parse(q)
    if not terms or not ticket_ids:
        return {}
    pattern = _pattern(terms)
    entries = db.session.scalars(
        select(ThreadEntry)
        .where(ThreadEntry.ticket_id.in_(ticket_ids), ThreadEntry.kind.in_(sorted(INDEXED_KINDS)))
        .order_by(ThreadEntry.id)
    )
    found: dict[int, Snippet] = {}
    for entry in entries:
        ticket_id = entry.ticket_id
        if ticket_id in found:
            continue
        flat = " ".join(indexed_text(entry)[:MAX_TEXT].split())
        hit = pattern.search(flat)
        if hit is None:  # typed full-width, or without its accents: show the folded text
            flat = _fold(flat)
            hit = pattern.search(flat)
        if hit is None:
            continue
        start, end = hit.span()
        before = flat[max(0, start - SNIPPET_CONTEXT) : start]
        after = flat[end : end + SNIPPET_CONTEXT]
        found[ticket_id] = Snippet(
            ("…" if start > SNIPPET_CONTEXT else "") + before,
            flat[start:end],
            after + ("…" if end + SNIPPET_CONTEXT < len(flat) else ""),
        )
    return found


def in_models(_object, name: str | None, type_: str, _reflected: bool, _compare_to) -> bool:
    """Whether Alembic should compare this part of the schema with the models: not the
    search index, which exists on PostgreSQL only (an ``include_object`` hook)."""
    if type_ == "table":
        return not (name or "").startswith("ticket_search")
    return name not in ("search_vector", "ix_tickets_search_vector")
