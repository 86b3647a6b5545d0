"""What views do with submitted forms: show a refusal beside its field, read uploads."""

from flask import flash, request

from crm.errors import DomainError
from crm.tickets.service import MAX_FILE_BYTES, Upload


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
