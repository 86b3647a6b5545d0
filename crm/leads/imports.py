"""Importing leads and do-not-contact entries from CSV, row by row checked and in
batches written: a rejected row is reported with its number and reason and never stops
the rest; a row whose phone is on an open lead (or on an earlier row) joins that lead.

Leads: columns ``name,phone,email,company,source,consent``. ``consent`` is empty or
``yes:<evidence reference>``; a row without it is kept as "do not call until consent is
recorded". An imported row is not a request to be called now, so it starts no
first-contact promise. Entries: columns ``phone,email,reason``.
"""

import csv
import enum
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta

from flask_babel import gettext as _
from psycopg.types.json import Json
from sqlalchemy import insert, select, text, update

from crm.audit.chain import digest
from crm.audit.service import Actor, record
from crm.columns import utcnow
from crm.dnc import service as dnc
from crm.dnc.models import EntrySource
from crm.errors import DomainError
from crm.extensions import db
from crm.leads import intake
from crm.leads.models import (
    OPEN_STAGES,
    ActivityKind,
    Consent,
    Lead,
    LeadActivity,
    LeadRequest,
    Purpose,
    Source,
    Stage,
)
from crm.provisioning.models import TenantSettings
from crm.provisioning.service import tenant_settings
from tenants import current_tenant_id

LEAD_COLUMNS = ("name", "phone", "email", "company", "source", "consent")
DNC_COLUMNS = ("phone", "email", "reason")
BATCH = 2500
MAX_ERRORS_KEPT = 1000
MAX_FILE_BYTES = 50 * 1024 * 1024


class BadFile(ValueError):
    """The file is not a CSV with the expected columns: nothing is imported."""


@dataclass
class ImportResult:
    imported: int = 0
    merged: int = 0
    rejected: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)  # (row number, reason)

    def reject(self, row: int, reason: str) -> None:
        self.rejected += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append((row, reason))

    @property
    def summary(self) -> str:
        return f"imported {self.imported}, merged {self.merged}, rejected {self.rejected}"


def read_csv(content: bytes, columns: tuple[str, ...]) -> Iterator[tuple[int, dict]]:
    """(row number, row) of a CSV in UTF-8 (with or without BOM) or GB18030, whose header
    holds ``columns`` (in any order). Row 1 is the header."""
    if len(content) > MAX_FILE_BYTES:
        raise BadFile(_("The file is larger than %(mb)d MB.", mb=MAX_FILE_BYTES // 2**20))
    if b"\x00" in content[:4096]:
        raise BadFile(_("This is not a CSV file."))
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = content.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise BadFile(_("This is not a CSV file in UTF-8 or GB18030."))
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [name.strip().lower() for name in reader.fieldnames or []]
    missing = [column for column in columns if column not in header]
    if missing:
        raise BadFile(_("The header must have the columns %(columns)s.", columns=",".join(columns)))
    reader.fieldnames = header
    for number, row in enumerate(reader, start=2):
        yield number, {key: (value or "").strip() for key, value in row.items() if key in columns}


def _reason(error: DomainError) -> str:
    """A rejected row's reason: the column, then what is wrong with it."""
    return f"{error.field}: {error.message}" if error.field else str(error.message)


def _batches(rows: Iterable, size: int = BATCH) -> Iterator[list]:
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


# --- leads ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    number: int
    details: intake.LeadDetails
    source_detail: str | None
    evidence: str | None


def _checked(number: int, row: dict) -> _Row:
    details = intake.checked_details(
        intake.LeadDetails(
            name=row.get("name", ""),
            phone=row.get("phone") or None,
            email=row.get("email") or None,
            company=row.get("company") or None,
        ),
        phone_required=False,
    )
    given = row.get("consent", "")
    evidence = None
    if given:
        kind, _sep, evidence = given.partition(":")
        evidence = evidence.strip()
        if kind.strip().lower() != "yes" or not evidence or len(evidence) > 200:
            raise DomainError(_("write yes:<evidence reference>, or leave it empty"), "consent")
    source = row.get("source") or None
    if source and len(source) > 100:
        raise DomainError(_("Use at most %(n)d characters.", n=100), "source")
    return _Row(number, details, source, evidence)


def import_leads(
    rows: Iterable[tuple[int, dict]], *, actor: Actor, progress: Callable[[int], None] | None = None
) -> ImportResult:
    """Import lead rows, committing each batch; ``progress(rows done)`` after each."""
    result = ImportResult()
    done = 0
    for batch in _batches(rows):
        checked: list[_Row] = []
        for number, row in batch:
            try:
                checked.append(_checked(number, row))
            except DomainError as error:
                result.reject(number, _reason(error))
        _write_leads(checked, result, actor)
        db.session.commit()
        done += len(batch)
        if progress:
            progress(done)
    return result


def _allocate(count: int) -> tuple[list[tuple[int, str]], int | None]:
    """``count`` lead numbers and references under the settings row's lock, and who took
    the last lead before them."""
    before = db.session.execute(
        select(TenantSettings.last_lead_assignee_id).where(TenantSettings.tenant_id == current_tenant_id())
    ).scalar_one()
    last_number, prefix = (
        db.session.connection()
        .execute(
            update(TenantSettings.__table__)
            .where(TenantSettings.tenant_id == current_tenant_id())
            .values(next_lead_number=TenantSettings.next_lead_number + count)
            .returning(TenantSettings.next_lead_number, TenantSettings.lead_prefix)
        )
        .one()
    )
    first = last_number - count
    return [(n, f"{prefix}-{n}") for n in range(first, last_number)], before


def _append(connection, table, rows: list[dict]) -> None:
    """Rows whose ids nothing needs, appended in bulk: COPY on PostgreSQL (a third of a
    multi-row INSERT's cost went to the driver reading its thousands of placeholders),
    a multi-row INSERT elsewhere. The rows carry their tenant.

    COPY cannot write into a table under row-level security, so the rows are copied into
    a temporary table of the columns given (no policies there), then inserted from it in
    one statement, which the policies check like any other."""
    if not rows:
        return
    if connection.dialect.name != "postgresql":
        connection.execute(insert(table), rows)
        return
    names = list(rows[0])
    columns = ", ".join(names)  # our own names, no input
    staging = f"ledgerdesk_staging_{table.name}"
    with connection.connection.driver_connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE {staging} ON COMMIT DROP"
            f" AS SELECT {columns} FROM {table.name} WITH NO DATA"
        )
        with cursor.copy(f"COPY {staging} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([_copyable(row[name]) for name in names])
    connection.execute(text(f"INSERT INTO {table.name} ({columns}) SELECT {columns} FROM {staging}"))
    connection.execute(text(f"DROP TABLE {staging}"))


def _insert_with_ids(connection, table, rows: list[dict]) -> list[int]:
    """Insert ``rows``; their ids, in order. On PostgreSQL the ids are drawn from the
    table's sequence first (one query) and the rows COPYed; elsewhere a multi-row INSERT
    returns them."""
    if connection.dialect.name != "postgresql":
        statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
        return list(connection.execute(statement, rows).scalars())
    ids = list(
        connection.execute(
            text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :count)"),
            {"table": table.name, "count": len(rows)},
        ).scalars()
    )
    _append(connection, table, [{"id": row_id, **row} for row_id, row in zip(ids, rows, strict=True)])
    return ids


def _copyable(value):
    if isinstance(value, dict):
        return Json(value)
    if isinstance(value, enum.Enum):
        return value.value
    return value


@dataclass
class _Filed:
    """A lead a batch files rows under: one already open, or one the batch creates."""

    id: int
    reference: str
    phone: str | None
    email: str | None


def _write_leads(rows: list[_Row], result: ImportResult, actor: Actor) -> None:
    """One batch, in a fixed number of statements: the open leads of its phones, one
    multi-row INSERT each for the new leads, the requests, the consent proofs and the
    activities, and one audit event per row."""
    if not rows:
        return
    now, tenant_id = utcnow(), current_tenant_id()
    # Core statements on the session's connection, the rows stamped with the tenant (as
    # ``insert_new`` writes): the ORM's bulk path splits rows with empty columns into
    # single INSERTs.
    connection = db.session.connection()
    phones = sorted({row.details.phone for row in rows if row.details.phone})
    open_leads: dict[str, _Filed] = {}
    consented: set[int] = set()
    if phones:
        found = db.session.execute(
            select(Lead.id, Lead.reference, Lead.phone, Lead.email)
            .where(Lead.phone.in_(phones), Lead.stage.in_(OPEN_STAGES))
            .order_by(Lead.id)
        )
        open_leads = {
            phone: _Filed(lead_id, reference, phone, email) for lead_id, reference, phone, email in found
        }
    new_rows, seen = [], set()
    for row in rows:
        phone = row.details.phone
        if phone and (phone in open_leads or phone in seen):
            continue
        seen.add(phone)
        new_rows.append(row)
    created: dict[int, _Filed] = {}
    if new_rows:
        numbers, last = _allocate(len(new_rows))
        takers = [user.id for user in intake.lead_takers()]
        start = takers.index(last) + 1 if last in takers else 0
        values = [
            {
                "tenant_id": tenant_id,
                "number": number,
                "reference": reference,
                "stage": Stage.NEW,
                "name": row.details.name,
                "company": row.details.company,
                "phone": row.details.phone,
                "email": row.details.email,
                "source": Source.IMPORT,
                "source_detail": row.source_detail,
                "locale": row.details.locale,
                "assignee_id": takers[(start + position) % len(takers)] if takers else None,
                "marketing_consent": False,
                "failed_attempts": 0,
                "created_at": now,
                "updated_at": now,
            }
            for position, (row, (number, reference)) in enumerate(zip(new_rows, numbers, strict=True))
        ]
        ids = _insert_with_ids(connection, Lead.__table__, values)
        for row, lead_id, value in zip(new_rows, ids, values, strict=True):
            filed = _Filed(lead_id, value["reference"], value["phone"], value["email"])
            created[row.number] = filed
            if filed.phone:
                open_leads[filed.phone] = filed
        if takers:
            db.session.execute(
                update(TenantSettings.__table__)
                .where(TenantSettings.tenant_id == tenant_id)
                .values(last_lead_assignee_id=takers[(start + len(new_rows) - 1) % len(takers)])
            )
    filed_rows = [(row, created.get(row.number) or open_leads[row.details.phone]) for row in rows]
    request_ids = _insert_with_ids(
        connection,
        LeadRequest.__table__,
        [
            {"tenant_id": tenant_id, "lead_id": lead.id, "channel": Source.IMPORT, "created_at": now}
            for _row, lead in filed_rows
        ],
    )
    retain_until = now + timedelta(days=tenant_settings().consent_retention_days)
    proofs = [
        {
            "tenant_id": tenant_id,
            "lead_id": lead.id,
            "lead_request_id": request_id,
            "purpose": Purpose.CONTACT,
            "given": True,
            "text": "",
            "text_version": "external",
            "text_sha256": digest(""),
            "channel": Source.IMPORT,
            "evidence_ref": row.evidence,
            "phone": lead.phone,
            "email": lead.email,
            "recorded_at": now,
            "retain_until": retain_until,
        }
        for (row, lead), request_id in zip(filed_rows, request_ids, strict=True)
        if row.evidence
    ]
    if proofs:
        _append(connection, Consent.__table__, proofs)
        consented = {proof["lead_id"] for proof in proofs}
        db.session.execute(update(Lead).where(Lead.id.in_(consented)).values(contact_consent_at=now))
    _append(
        connection,
        LeadActivity.__table__,
        [
            {
                "tenant_id": tenant_id,
                "lead_id": lead.id,
                "kind": ActivityKind.REQUEST,
                "body": "",
                "details": {
                    "channel": Source.IMPORT,
                    "request_id": request_id,
                    "joined": row.number not in created,
                    "row": row.number,
                },
                "created_at": now,
            }
            for (row, lead), request_id in zip(filed_rows, request_ids, strict=True)
        ],
    )
    for (row, lead), request_id in zip(filed_rows, request_ids, strict=True):
        joined = row.number not in created
        if joined:
            result.merged += 1
        else:
            result.imported += 1
        record(
            "lead.request_joined" if joined else "lead.created",
            "lead",
            lead.id,
            actor=actor,
            data={
                "reference": lead.reference,
                "request_id": request_id,
                "channel": Source.IMPORT,
                "row": row.number,
                "name_sha256": digest(row.details.name),
                "phone_sha256": digest(row.details.phone) if row.details.phone else None,
                "email_sha256": digest(row.details.email) if row.details.email else None,
                # Consent given elsewhere: where its proof is, as a digest.
                "consent_evidence_sha256": digest(row.evidence) if row.evidence else None,
            },
        )


# --- the do-not-contact list --------------------------------------------------------------------------


def import_dnc(
    rows: Iterable[tuple[int, dict]], *, actor: Actor, progress: Callable[[int], None] | None = None
) -> ImportResult:
    """Import entries (a phone, an email, or both on one row), committing each batch;
    ``merged`` counts those already on the list."""
    result = ImportResult()
    done = 0
    for batch in _batches(rows):
        for number, row in batch:
            values = [("phone", row.get("phone")), ("email", row.get("email"))]
            values = [(kind, value) for kind, value in values if value]
            if not values:
                result.reject(number, _("Give a phone number or an email address."))
                continue
            try:
                with db.session.begin_nested():
                    added = [
                        dnc.add_entry(
                            kind,
                            value,
                            reason=row.get("reason") or "",
                            source=EntrySource.IMPORT,
                            actor=actor,
                        )[1]
                        for kind, value in values
                    ]
            except DomainError as error:
                result.reject(number, _reason(error))
                continue
            if any(added):
                result.imported += 1
            else:
                result.merged += 1
        db.session.commit()
        done += len(batch)
        if progress:
            progress(done)
    return result
