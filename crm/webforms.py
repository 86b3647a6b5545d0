"""What views do with submitted forms: run the service call as the request's one
transaction, show a refusal beside its field, read uploads."""

import secrets
from collections.abc import Callable
from typing import TypeVar

from flask import current_app, flash, request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from wtforms import SelectChoice

from crm.errors import DomainError
from crm.extensions import db
from crm.tickets.service import MAX_FILE_BYTES, Upload
from tenants import current_tenant

T = TypeVar("T")


def in_one_transaction(action: Callable[[], T], *, done: str | None = None) -> T:
    """Run a view's service call as the request's one transaction: commit what it changed
    and say ``done``; if the service raises (a refusal, DomainError, for the view to
    show), roll everything back and raise it again. ``action`` returns what the page
    needs afterwards, read before the commit expires the objects it loaded."""
    try:
        result = action()
    except Exception:
        db.session.rollback()
        raise
    db.session.commit()
    if done:
        flash(done, "success")
    return result


class SubmissionTokens:
    """Signed one-time nonces, one for each filling-in of a tenant's public form; the salt
    keeps one form's tokens from serving another's."""

    MAX_AGE = 24 * 3600

    def __init__(self, salt: str) -> None:
        self.salt = salt

    def _signer(self) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(current_app.secret_key, salt=self.salt)

    def new(self) -> str:
        return self._signer().dumps([current_tenant().id, secrets.token_hex(16)])

    def nonce_of(self, token: str) -> str | None:
        """The nonce of a token this tenant's form issued, else None (another tenant's or
        form's, forged or expired)."""
        try:
            tenant_id, nonce = self._signer().loads(token, max_age=self.MAX_AGE)
        except (BadSignature, TypeError, ValueError):
            return None
        return nonce if tenant_id == current_tenant().id and isinstance(nonce, str) else None


def accepted(response) -> bool:
    """A public form's submission that made (or found) what it asked for: the form
    redirects to its receipt. Only these count towards the per-address hourly limit."""
    return response.status_code == 302


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
