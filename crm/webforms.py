"""What views do with submitted forms: run the service call as the request's one
transaction, show a refusal beside its field, read uploads."""

from collections.abc import Callable
from typing import TypeVar

from flask import flash, request
from wtforms import SelectChoice

from crm.errors import DomainError
from crm.extensions import db
from crm.tickets.service import MAX_FILE_BYTES, Upload

T = TypeVar("T")


def in_one_transaction(action: Callable[[], T], *, done: str | None = None) -> T:
    """Run a view's service call as the request's one transaction: commit what it changed
    and say ``done``; if the service refuses, roll everything back and raise its
    DomainError for the view to show. ``action`` returns what the page needs afterwards,
    read before the commit expires the objects it loaded."""
    try:
        result = action()
    except DomainError:
        db.session.rollback()
        raise
    db.session.commit()
    if done:
        flash(done, "success")
    return result


def label_choices(labels: dict, *, blank=None) -> list[SelectChoice]:
    """A select's choices from a {value: label} map, after an optional blank choice."""
    first = [SelectChoice("", blank)] if blank is not None else []
    return first + [SelectChoice(str(value), label) for value, label in labels.items()]


def show_error(form, error: DomainError) -> None:
    """The service's refusal beside the field it names, else as a message at the top."""
    field = getattr(form, error.field, None) if error.field else None
    if field is not None:
        field.errors = [*field.errors, error.message]
    else:
        flash(error.message, "danger")


def uploads_of(field_name: str) -> list[Upload]:
    """The files of a multi-file field, read up to one byte past the size limit."""
    return [
        Upload(storage.filename, storage.stream.read(MAX_FILE_BYTES + 1))
        for storage in request.files.getlist(field_name)
        if storage and storage.filename
    ]
