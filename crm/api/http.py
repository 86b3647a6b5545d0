"""What every API call shares: the key in ``Authorization: Bearer``, its scope and
tenant, the per-key rate limit, RFC 9457 problem responses, ETags and idempotency."""

import hashlib
import json
from collections.abc import Callable
from functools import wraps

from flask import Response, current_app, g, request
from flask_babel import gettext as _
from pydantic import BaseModel, ValidationError

from crm.access import client_ip
from crm.api import keys
from crm.api.models import IdempotentResult
from crm.columns import utcnow
from crm.errors import DomainError, problem
from crm.extensions import db, insert_or_ignore
from crm.ratelimit import Breach, limit
from crm.tickets.input_checks import MAX_FILE_BYTES, Upload
from tenants import current_tenant

API_RATE = "600/minute"  # per key; API_RATE_LIMIT in the configuration changes it
MAX_BODY = 1024 * 1024


def field_problem(field: str, message: str, status: int = 400) -> Response:
    """A request refused for one field (a query parameter, or a member of the body)."""
    title = _("The query is not valid.") if status == 400 else _("The request is not valid.")
    return problem(status, title, errors=[{"field": field, "message": message}])


def json_response(body, status: int = 200, headers: dict | None = None) -> Response:
    return Response(
        json.dumps(body, ensure_ascii=False, default=str),
        status,
        mimetype="application/json",
        headers=headers or {},
    )


def validation_problem(error: ValidationError) -> Response:
    errors = [
        {"field": ".".join(str(part) for part in item["loc"]) or "body", "message": item["msg"]}
        for item in error.errors()
    ]
    return problem(422, _("The request is not valid."), errors=errors)


def domain_problem(error: DomainError) -> Response:
    errors = [{"field": error.field, "message": str(error.message)}] if error.field else None
    return problem(error.status, str(error.message), errors=errors)


def _bearer() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    return secret.strip() if scheme.lower() == "bearer" else ""


def rate_key() -> str:
    """Per key (by its digest; an unknown key shares its caller's address's bucket)."""
    secret = _bearer()
    return "api:" + (keys.key_digest(secret)[:24] if secret else f"ip:{client_ip()}")


def api_rate() -> str:
    return current_app.config.get("API_RATE_LIMIT") or API_RATE


def _limited(breach: Breach) -> Response:
    return problem(429, _("Too many requests for this key."))


def api_call(scope: str) -> Callable:
    """A view of the API: a key of this tenant, usable, with ``scope``; the key is
    ``g.api_key`` and the audit actor ``g.api_actor``."""

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        @limit(api_rate, key=rate_key, on_breach=_limited)
        def checked(*args, **kwargs):
            secret = _bearer()
            key = keys.find_key(secret) if secret else None
            unauthenticated = {"WWW-Authenticate": 'Bearer realm="ledgerdesk"'}
            if key is None:
                return problem(401, _("A valid API key is required."), headers=unauthenticated)
            if key.tenant_id != current_tenant().id:
                return problem(404, _("Not found."))
            now = utcnow()
            if not keys.usable(key, now):
                return problem(401, _("This API key is revoked or expired."), headers=unauthenticated)
            if scope not in key.scopes:
                return problem(403, _("This API key lacks the scope %(scope)s.", scope=scope))
            if keys.touch(key, now):
                db.session.commit()
            g.api_key, g.api_actor = key, keys.actor_of(key, client_ip())
            try:
                return view(*args, **kwargs)
            except ValidationError as error:
                db.session.rollback()
                return validation_problem(error)
            except DomainError as error:
                db.session.rollback()
                return domain_problem(error)

        return checked

    return decorate


def body_of(schema: type[BaseModel]) -> BaseModel:
    """The JSON body, validated by ``schema`` (a ValidationError is the caller's 422)."""
    raw = request.get_data(cache=True)
    if len(raw) > MAX_BODY:
        raise DomainError(_("The request body is too large."), "body")
    return schema.model_validate_json(raw or b"{}")


def body_and_files(schema: type[BaseModel], file_field: str) -> tuple[BaseModel, list[Upload]]:
    """The body as JSON, or as multipart/form-data whose fields are the schema's members
    and whose file parts ``file_field`` are the files (read up to one byte past the size
    limit, so the service can refuse a larger one)."""
    if not request.mimetype.startswith("multipart/"):
        return body_of(schema), []
    fields = {key: value for key, value in request.form.items() if value != ""}
    data = schema.model_validate_json(json.dumps(fields))
    files = [
        Upload(stored.filename, stored.stream.read(MAX_FILE_BYTES + 1))
        for stored in request.files.getlist(file_field)
        if stored and stored.filename
    ]
    return data, files


def etag_of(*parts) -> str:
    return '"' + hashlib.sha256("|".join(str(part) for part in parts).encode()).hexdigest()[:32] + '"'


def idempotent(create: Callable[[], tuple[dict, str | None]]) -> Response:
    """Run a creating call once per ``Idempotency-Key``: the first answer (201 and its
    body) is kept and given again to a retry; the same key with another request is a 409."""
    idempotency_key = request.headers.get("Idempotency-Key", "").strip()
    if not idempotency_key:
        body, location = create()
        db.session.commit()
        return json_response(body, 201, {"Location": location} if location else None)
    if len(idempotency_key) > 200:
        return problem(400, _("The Idempotency-Key is too long (at most 200 characters)."))
    fingerprint = hashlib.sha256(
        f"{request.method} {request.path} ".encode() + request.get_data()
    ).hexdigest()
    row = {
        "api_key_id": g.api_key.id,
        "idempotency_key": idempotency_key,
        "request_sha256": fingerprint,
        "created_at": utcnow(),
    }
    if not insert_or_ignore(IdempotentResult, row):  # a retry: waits for the first to commit
        kept = db.session.get(IdempotentResult, (current_tenant().id, g.api_key.id, idempotency_key))
        db.session.commit()
        if kept is None or kept.request_sha256 != fingerprint or kept.status is None:
            return problem(409, _("This Idempotency-Key was used for another request."))
        return json_response(kept.body, kept.status, {"Location": kept.location} if kept.location else None)
    body, location = create()
    kept = db.session.get(IdempotentResult, (current_tenant().id, g.api_key.id, idempotency_key))
    kept.status, kept.body, kept.location = 201, json.loads(json.dumps(body, default=str)), location
    db.session.commit()
    return json_response(body, 201, {"Location": location} if location else None)
