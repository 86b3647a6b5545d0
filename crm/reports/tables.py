"""A report as tables: the same rows for the page, the CSV download and the CLI's JSON."""

import csv
import io
from dataclasses import dataclass


@dataclass(frozen=True)
class Table:
    key: str  # stable name, for JSON and element ids
    title: str
    columns: list[tuple[str, str]]  # (key, label)
    rows: list[dict]

    def as_json(self) -> dict:
        return {
            "table": self.key,
            "rows": [{key: row.get(key) for key, _ in self.columns} for row in self.rows],
        }


def as_document(tables: list[Table], period) -> dict:
    """The report as JSON (the CLI's ``--format json`` and the API): its period and tables."""
    return {
        "from": period.first_day.isoformat(),
        "to": period.last_day.isoformat(),
        "timezone": period.timezone,
        "tables": [table.as_json() for table in tables],
    }


def as_csv(tables: list[Table]) -> bytes:
    """UTF-8 with a byte-order mark, so Excel reads Chinese right; one block per table,
    headed by its title and its columns' labels (in the page's language)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for number, table in enumerate(tables):
        if number:
            writer.writerow([])
        writer.writerow([table.title])
        writer.writerow([label for _, label in table.columns])
        for row in table.rows:
            writer.writerow([spreadsheet_cell(row.get(key)) for key, _ in table.columns])
    return "\ufeff".encode() + out.getvalue().encode()


def spreadsheet_cell(value) -> str:
    """A value as a spreadsheet should read it: text, never a formula (a customer's name
    may begin with = or @); numbers stay numbers."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.1f}"
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _number(text) else text


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
