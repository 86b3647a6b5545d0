"""Full-text search of what was said on a ticket (issue 17, section 2): on PostgreSQL a
``tsvector`` column on tickets with a GIN index, on SQLite an FTS5 table keyed by the
ticket's id, both holding the tokens of ``crm.tickets.search`` (bigrams for Chinese; on PostgreSQL each
written with its tenant's id, so each tenant has index lists and statistics of its own).
Existing tickets are indexed here, a batch at a time.

Revision ID: 0040_ticket_search
Revises: 0039_imap_and_inbound_ids
Create Date: 2026-12-04
"""

import re
import unicodedata
from collections import defaultdict

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0040_ticket_search"
down_revision = "0039_imap_and_inbound_ids"
branch_labels = None
depends_on = None

BATCH = 2_000

# The tokens of crm.tickets.search as this revision knew them (a migration stands alone).
INDEXED_KINDS = ("call_log", "inbound_message", "internal_note", "public_reply")
CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
TOKEN = re.compile(rf"([{CJK}]+)|([^\W_{CJK}]+)")


def tokens(text: str) -> list[str]:
    decomposed = unicodedata.normalize("NFKD", text[:20_000].lower())
    folded = "".join(char for char in decomposed if not unicodedata.combining(char))
    found: list[str] = []
    for run, word in TOKEN.findall(folded):
        if word:
            found.append(word[:40])
        elif len(run) == 1:
            found.append(run)
        else:
            found.extend(run[i : i + 2] for i in range(len(run) - 1))
            found.append(run[-1])
    return found


def tsvector_literal(terms: list[str], tenant_id: int) -> str:
    positions: dict[str, list[int]] = {}
    for position, term in enumerate(terms, start=1):
        if term not in positions and len(positions) == 20_000:
            continue  # a tsvector holds at most 1 MB of terms
        places = positions.setdefault(term, [])
        if len(places) < 255:
            places.append(min(position, 16_383))
    return " ".join(f"'{tenant_id}:{term}':{','.join(map(str, places))}" for term, places in positions.items())


def _backfill(bind, postgres: bool) -> None:
    entries = sa.text(
        "SELECT tenant_id, ticket_id, body FROM thread_entries "
        "WHERE ticket_id > :after AND ticket_id <= :upto AND kind IN :kinds ORDER BY ticket_id, id"
    ).bindparams(sa.bindparam("kinds", expanding=True))
    if postgres:
        write = sa.text("UPDATE tickets SET search_vector = CAST(:v AS tsvector) WHERE id = :id")
    else:
        write = sa.text("INSERT INTO ticket_search (rowid, tokens) VALUES (:id, :t)")
    after = 0
    while True:
        upto = bind.execute(
            sa.text(
                "SELECT max(id) FROM (SELECT id FROM tickets WHERE id > :after ORDER BY id LIMIT :n) AS b"
            ),
            {"after": after, "n": BATCH},
        ).scalar()
        if upto is None:
            return
        terms: dict[tuple[int, int], list[str]] = {}
        batch = bind.execute(entries, {"after": after, "upto": upto, "kinds": INDEXED_KINDS})
        for tenant_id, ticket_id, body in batch:
            terms.setdefault((tenant_id, ticket_id), []).extend(tokens(body))
        if terms:
            bind.execute(
                write,
                [
                    {"id": ticket_id, "v": tsvector_literal(found, tenant_id)}
                    if postgres
                    else {"id": ticket_id, "t": " ".join(found)}
                    for (tenant_id, ticket_id), found in terms.items()
                ],
            )
        after = upto


def upgrade():
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    if postgres:
        op.execute("ALTER TABLE tickets ADD COLUMN search_vector tsvector NOT NULL DEFAULT ''")
    else:
        op.execute(
            "CREATE VIRTUAL TABLE ticket_search USING fts5(tokens, tokenize = 'unicode61 remove_diacritics 0')"
        )
    _backfill(bind, postgres)
    if postgres:
        op.execute("CREATE INDEX ix_tickets_search_vector ON tickets USING gin (search_vector)")
        # Rare words must look rare to the planner (a sample of 300,000 tickets, not 30,000).
        op.execute("ALTER TABLE tickets ALTER COLUMN search_vector SET STATISTICS 1000")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_tickets_search_vector")
        op.execute("ALTER TABLE tickets DROP COLUMN search_vector")
    else:
        op.execute("DROP TABLE ticket_search")
