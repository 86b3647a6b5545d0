"""The OpenAPI 3.1 document of the API, made from the same pydantic models that validate
requests (their JSON Schema 2020-12 is OpenAPI 3.1's own dialect)."""

import re
from dataclasses import dataclass

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from crm.api import schemas

REF = "#/components/schemas/{model}"


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    scope: str | None
    response: type[BaseModel] | None
    request: type[BaseModel] | None = None
    status: int = 200
    parameters: tuple[tuple[str, str, str], ...] = ()  # (name, in, description)
    idempotent: bool = False
    # The body may also come as multipart/form-data with this file part (repeated when
    # ``many_files``).
    file_part: str | None = None
    many_files: bool = False


NUMBER = (("number", "path", "The ticket's number, e.g. 1042 for RF-1042"),)
REFERENCE = (("reference", "path", "The lead's reference, e.g. LD-1001"),)
OPERATIONS = (
    Operation(
        "get",
        "/tickets",
        "List tickets: the queue's views, filters and search",
        "tickets:read",
        schemas.TicketPage,
        parameters=tuple(
            (name, "query", description)
            for name, description in (
                (
                    "view",
                    "open (default), mine, unassigned, needs_manager, breaching_soon, breached, "
                    "awaiting_customer, pending_approval, resolved, closed, all",
                ),
                ("q", "Reference, phone or its last digits, email, account or name"),
                ("status", "A status"),
                ("kind", "refund, complaint or inquiry"),
                ("priority", "A priority"),
                ("reason", "A reason code"),
                ("assignee", "A user id, or none"),
                ("sort", "oldest, newest or due"),
                ("after", "The cursor of the next page (from next)"),
            )
        ),
    ),
    Operation(
        "post",
        "/tickets",
        "Create a refund request (channel api)",
        "tickets:write",
        schemas.TicketOut,
        schemas.TicketIn,
        201,
        idempotent=True,
        file_part="attachments",
        many_files=True,
    ),
    Operation(
        "get",
        "/tickets/{number}",
        "A ticket with its thread and clocks",
        "tickets:read",
        schemas.TicketDetail,
        parameters=NUMBER,
    ),
    Operation(
        "post",
        "/tickets/{number}/replies",
        "Reply to the customer (tracking page and email)",
        "tickets:write",
        schemas.EntryOut,
        schemas.MessageIn,
        201,
        parameters=NUMBER,
    ),
    Operation(
        "post",
        "/tickets/{number}/notes",
        "Add an internal note",
        "tickets:write",
        schemas.EntryOut,
        schemas.MessageIn,
        201,
        parameters=NUMBER,
    ),
    Operation(
        "patch",
        "/tickets/{number}",
        "Assign, prioritise, reopen or close (If-Match required)",
        "tickets:write",
        schemas.TicketOut,
        schemas.TicketPatch,
        parameters=(*NUMBER, ("If-Match", "header", "The ETag from reading the ticket")),
    ),
    Operation(
        "get",
        "/tickets/{number}/refund",
        "The ticket's refund decisions, payouts and escalations",
        "tickets:read",
        None,
        parameters=NUMBER,
    ),
    Operation("get", "/policies", "The published refund policy versions", "tickets:read", None),
    Operation(
        "patch",
        "/leads/{reference}",
        "Move a lead to another stage (If-Match required)",
        "leads:write",
        schemas.LeadOut,
        schemas.StageIn,
        parameters=(*REFERENCE, ("If-Match", "header", "The ETag from reading the lead")),
    ),
    Operation(
        "get",
        "/customers",
        "Look customers up by phone or email",
        "tickets:read",
        None,
        parameters=(("phone", "query", "As typed, or E.164"), ("email", "query", "An address")),
    ),
    Operation(
        "get",
        "/customers/{customer_id}",
        "A customer with their tickets and leads",
        "tickets:read",
        None,
        parameters=(("customer_id", "path", "The customer's id"),),
    ),
    Operation(
        "get",
        "/leads",
        "List leads",
        "leads:read",
        schemas.LeadPage,
        parameters=(
            ("view", "query", "new, overdue or all (default)"),
            ("q", "query", "Search"),
            ("after", "query", "The next page's cursor"),
        ),
    ),
    Operation(
        "post",
        "/leads",
        "Create a lead (or join the open lead of the same phone) with its consent proof",
        "leads:write",
        schemas.LeadOut,
        schemas.LeadIn,
        201,
        idempotent=True,
    ),
    Operation("get", "/leads/{reference}", "A lead", "leads:read", schemas.LeadOut, parameters=REFERENCE),
    Operation(
        "post",
        "/leads/{reference}/calls",
        "Log a call with a lead",
        "leads:write",
        schemas.LeadOut,
        schemas.CallIn,
        201,
        parameters=REFERENCE,
    ),
    Operation(
        "get",
        "/dnc/check",
        "Allowed or blocked, before a call",
        "dnc:read",
        schemas.DncCheck,
        parameters=(("phone", "query", "As typed, or E.164"), ("email", "query", "An address")),
    ),
    Operation(
        "post",
        "/dnc",
        "Add a number or an address to the do-not-contact list",
        "dnc:write",
        schemas.DncEntryOut,
        schemas.DncIn,
        201,
        idempotent=True,
    ),
    Operation(
        "delete",
        "/dnc/{entry_id}",
        "Remove an entry, with the reason",
        "dnc:write",
        schemas.DncEntryOut,
        schemas.DncRemoveIn,
        parameters=(("entry_id", "path", "The entry's id"),),
    ),
    Operation(
        "post",
        "/tickets/{number}/payouts",
        "Record money paid out for the ticket's approved refund",
        "tickets:write",
        schemas.PayoutOut,
        schemas.PayoutIn,
        201,
        parameters=NUMBER,
        idempotent=True,
    ),
    Operation(
        "post",
        "/calls",
        "Post a call record: filed on the open ticket or lead of the number, or kept unmatched",
        "calls:write",
        schemas.DialerCallOut,
        schemas.DialerCallIn,
        201,
        idempotent=True,
        file_part="recording",
    ),
    Operation(
        "get",
        "/calls",
        "List call records, newest first",
        "calls:write",
        schemas.DialerCallPage,
        parameters=(
            ("state", "query", "filed, unmatched or dismissed"),
            ("before", "query", "The next page's cursor (from next)"),
        ),
    ),
    Operation(
        "get",
        "/calls/{call_id}",
        "A call record and where it was filed",
        "calls:write",
        schemas.DialerCallOut,
        parameters=(("call_id", "path", "The call record's id"),),
    ),
    Operation(
        "get",
        "/reports/{name}",
        "A manager report as tables: sla, complaints, refunds, leads or agents",
        "reports:read",
        None,
        parameters=(
            ("name", "path", "sla, complaints, refunds, leads or agents"),
            (
                "period",
                "query",
                "this_week, last_week, this_month, last_month (default), this_quarter, last_quarter "
                "or custom",
            ),
            ("first_day", "query", "With period=custom: the first day, YYYY-MM-DD"),
            ("last_day", "query", "With period=custom: the last day, YYYY-MM-DD"),
            ("kind", "query", "Only tickets of this kind"),
            ("reason", "query", "Only this reason"),
            ("channel", "query", "Only this channel"),
            ("priority", "query", "Only this priority"),
            ("assignee", "query", "Only this assignee's (a user id)"),
            ("by", "query", "sla only: metric (default), assignee, reason or week"),
        ),
    ),
    Operation(
        "get",
        "/audit/checkpoints",
        "The chain's signed checkpoints and the keys that verify them",
        "audit:read",
        None,
    ),
    Operation(
        "get",
        "/audit/events",
        "Audit events by sequence number",
        "audit:read",
        schemas.AuditPage,
        parameters=(("from", "query", "First seq (default 1)"), ("to", "query", "Last seq")),
    ),
)


# Ids and sequence numbers; the rest are strings.
INTEGER_PARAMETERS = frozenset({"number", "call_id", "customer_id", "entry_id", "before", "from", "to"})


def _parameter(name: str, where: str, description: str) -> dict:
    integer = name in INTEGER_PARAMETERS and where in ("path", "query")
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "description": description,
        "schema": {"type": "integer", "minimum": 0} if integer else {"type": "string"},
    }


def _operation(op: Operation) -> dict:
    responses = {
        str(op.status): {
            "description": "OK" if op.status == 200 else "Created",
            "content": {"application/json": {"schema": {"$ref": REF.format(model=op.response.__name__)}}}
            if op.response
            else {"application/json": {"schema": {"type": "object"}}},
        },
        **{
            str(code): {
                "description": text,
                "content": {"application/problem+json": {"schema": {"$ref": REF.format(model="Problem")}}},
            }
            for code, text in (
                (400, "A query parameter is not valid"),
                (401, "No key, or a revoked or expired one"),
                (403, "The key lacks the scope"),
                (404, "Not found (or another tenant's key)"),
                (422, "The body is not valid; each field's error is listed"),
                (429, "Too many requests for this key; see Retry-After"),
            )
        },
    }
    parameters = [_parameter(*parameter) for parameter in op.parameters]
    if op.idempotent:
        parameters.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "A retry with the same key returns the first result and makes nothing twice",
                "schema": {"type": "string", "maxLength": 200},
            }
        )
    operation = {
        "summary": op.summary,
        "operationId": op.method + "_" + re.sub(r"\W+", "_", op.path).strip("_"),
        "parameters": parameters,
        "responses": responses,
        "security": [{"bearer": []}],
        "x-scope": op.scope,
    }
    if op.request:
        schema = {"$ref": REF.format(model=op.request.__name__)}
        content = {"application/json": {"schema": schema}}
        if op.file_part:
            binary = {"type": "string", "format": "binary"}
            files = {"type": "array", "items": binary} if op.many_files else binary
            with_file = {"type": "object", "properties": {op.file_part: files}}
            content["multipart/form-data"] = {"schema": {"allOf": [schema, with_file]}}
        operation["requestBody"] = {"required": True, "content": content}
    return operation


def document(server_url: str) -> dict:
    models = {schemas.Problem} | {m for op in OPERATIONS for m in (op.request, op.response) if m}
    _, definitions = models_json_schema(
        [(model, "validation") for model in sorted(models, key=lambda m: m.__name__)],
        ref_template=REF,
    )
    paths: dict[str, dict] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Ledgerdesk API",
            "version": "1",
            "description": "Tickets, leads, customers, the do-not-contact list and the audit trail of one "
            "tenant. Times are RFC 3339 UTC; money is a decimal string and a currency code; errors are "
            "RFC 9457 problem details.",
        },
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "An API key"}},
        },
    }
