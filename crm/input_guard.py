"""What every request must hold before a view reads it: text without control characters,
and numbers the database can store. PostgreSQL refuses a NUL in text and a number past
its column's range with an error, and SQLite refuses a number past 64 bits; without these
checks both reach the user as a 500 instead of a 400 or 404 that says what is wrong.
"""

import re
from datetime import date

from flask import Flask, Request, request
from flask_babel import lazy_gettext as _l
from werkzeug.datastructures import ImmutableMultiDict, MultiDict
from werkzeug.routing import IntegerConverter
from wtforms import ValidationError

from crm.errors import InvalidInput

BIGINT_MAX = 2**63 - 1  # PostgreSQL BIGINT and SQLite INTEGER: ids, ticket and audit numbers
INTEGER_MAX = 2**31 - 1  # PostgreSQL INTEGER: policy version numbers
# C0 controls and DEL, but for the white space among them: tab, line and page breaks are
# text (Word's line break, pasted, is a vertical tab).
CONTROL_CHARACTER = re.compile("[\x00-\x08\x0e-\x1f\x7f]")
# Dates people may filter or type: far wider than any real date in a complaint, far
# narrower than what datetime arithmetic (a day added, a time zone applied) survives.
EARLIEST_DATE = date(1900, 1, 1)
LATEST_DATE = date(2200, 12, 31)

CONTROL_CHARACTER_MESSAGE = _l(
    "What you sent contains an invisible control character (such as NUL) that cannot be stored. "
    "Remove it and try again."
)
NUMBER_TOO_LARGE_MESSAGE = _l("A number in this address is too large.")


class BigIntConverter(IntegerConverter):
    """``<int:…>`` in URLs, bounded to the database's 64-bit integers: a longer number
    names nothing and is a 404, not a driver error."""

    def __init__(self, url_map, *args, **kwargs) -> None:
        kwargs.setdefault("max", BIGINT_MAX)
        super().__init__(url_map, *args, **kwargs)


class Int32Converter(IntegerConverter):
    """``<int32:…>``: a number stored in a 32-bit INTEGER column (a policy version)."""

    def __init__(self, url_map, *args, **kwargs) -> None:
        kwargs.setdefault("max", INTEGER_MAX)
        super().__init__(url_map, *args, **kwargs)


def number_or_none(text: str | None, digits: int = 18) -> int | None:
    """A number typed in a form (ASCII digits, at most ``digits`` of them), else None: an
    id or a ticket's number that cannot exist is simply not found ("²" is a digit to
    ``str.isdigit`` but not to ``int``)."""
    text = text or ""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= digits else None


def bounded_int(text: str, maximum: int = BIGINT_MAX) -> int:
    """``int(text)``, refused with a 400 past what the database can compare a column with."""
    value = int(text)
    if abs(value) > maximum:
        raise InvalidInput(NUMBER_TOO_LARGE_MESSAGE)
    return value


class BoundedArgs(ImmutableMultiDict):
    """Query and form arguments whose ``get(name, type=int)`` (werkzeug's idiom, used by
    views throughout) reads through ``bounded_int``: not a number is still the default,
    a number no column can hold is a 400."""

    def get(self, key, default=None, type=None):
        return super().get(key, default, bounded_int if type is int else type)

    def getlist(self, key, type=None):
        return super().getlist(key, bounded_int if type is int else type)


class BoundedParameters(Request):
    """A request whose query and form arguments are ``BoundedArgs``; mixed into whatever
    request class the app already has."""

    parameter_storage_class = BoundedArgs


def query_int(name: str, *, maximum: int) -> int | None:
    """The query argument ``name`` as a whole number for a column narrower than 64 bits
    (``None`` when absent or not a number)."""
    return request.args.get(name, type=lambda text: bounded_int(text, maximum))


def sane_date(form, field) -> None:
    """A WTForms validator: a date between 1900 and 2200."""
    if field.data is not None and not EARLIEST_DATE <= field.data <= LATEST_DATE:
        years = {"first": EARLIEST_DATE.year, "last": LATEST_DATE.year}
        raise ValidationError(_l("Enter a date between %(first)d and %(last)d.", **years))


def _has_control_character(values: MultiDict) -> bool:
    """Whether a key or value holds one. What is not text holds none: a request parsed
    from HTTP holds only text, but Werkzeug's test client can parse a field it encoded
    itself into a key of None (schemathesis found it), and that must not be a 500."""
    return any(
        isinstance(text, str) and CONTROL_CHARACTER.search(text)
        for item in values.items(multi=True)
        for text in item
    )


def refuse_control_characters_in_path(endpoint: str | None, values: dict | None) -> None:
    """Runs before any other URL processing, so a NUL in the tenant's slug never reaches
    the tenant lookup."""
    if CONTROL_CHARACTER.search(request.path):
        raise InvalidInput(CONTROL_CHARACTER_MESSAGE)


def refuse_control_characters_in_input() -> None:
    """Query arguments, form fields and uploaded files' names; after the tenant is known,
    so the refusal is shown on the tenant's own page."""
    file_names = [(storage.filename or "") for _, storage in request.files.items(multi=True)]
    if (
        _has_control_character(request.args)
        or _has_control_character(request.form)
        or any(CONTROL_CHARACTER.search(name) for name in file_names)
    ):
        raise InvalidInput(CONTROL_CHARACTER_MESSAGE)


def init_app(app: Flask) -> None:
    """Install the request class, the URL converters (before any blueprint registers its
    rules) and the checks."""
    app.request_class = type("GuardedRequest", (BoundedParameters, app.request_class), {})
    app.url_map.converters["int"] = BigIntConverter
    app.url_map.converters["int32"] = Int32Converter
    app.url_value_preprocessors.setdefault(None, []).insert(0, refuse_control_characters_in_path)
    app.before_request(refuse_control_characters_in_input)
