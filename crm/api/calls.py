"""The dialer's endpoints under /t/<slug>/api/v1/calls: post a call record (JSON, or
multipart with its recording), read one, and list them (the unmatched ones too)."""

from flask import Blueprint, g, request, url_for
from flask_babel import gettext as _

from crm.api import schemas
from crm.api.http import api_call, body_and_files, field_problem, idempotent, json_response, problem
from crm.calls import service as calls
from crm.calls.models import CallRecord, CallState

bp = Blueprint("calls", __name__)


def call_out(call: CallRecord, places: dict | None = None) -> dict:
    place = (places if places is not None else calls.filed_on([call])).get(call.id)
    recording = (
        schemas.RecordingOut(
            state=call.recording_state,
            sha256=call.recording_sha256,
            size=call.recording_size,
            content_type=call.recording_type,
            url=call.recording_url,
            error=call.recording_error,
        )
        if call.recording_state
        else None
    )
    return schemas.DialerCallOut(
        id=call.id,
        external_id=call.external_id,
        direction=call.direction,
        from_number=call.from_number,
        to=call.to_number,
        started_at=call.started_at,
        duration_seconds=call.duration_seconds,
        outcome=call.outcome,
        note=call.note,
        state=call.state,
        unmatched_reason=calls.unmatched_reason(call),
        ticket=place[1] if place and place[0] == "ticket" else None,
        lead=place[1] if place and place[0] == "lead" else None,
        recording=recording,
        created_at=call.created_at,
    ).model_dump(mode="json", by_alias=True)


@bp.post("/calls")
@api_call("calls:write")
def post_call():
    """A call record: filed on the open ticket or lead of the customer's number (or on
    ``reference``), else kept unmatched for staff. 201 with where it went."""
    data, files = body_and_files(schemas.DialerCallIn, "recording")
    if len(files) > 1:
        return field_problem("recording", _("Send one recording per call."), 422)

    def create():
        call = calls.receive(
            calls.DialerCall(
                direction=data.direction,
                from_number=data.from_number,
                to_number=data.to,
                started_at=data.started_at,
                duration_seconds=data.duration_seconds,
                outcome=data.outcome,
                note=data.note or "",
                external_id=data.external_id,
                recording=files[0] if files else None,
                recording_url=data.recording_url,
                recording_sha256=data.recording_sha256,
            ),
            actor=g.api_actor,
            api_key_id=g.api_key.id,
            reference=data.reference,
        )
        return call_out(call), url_for(".get_call", call_id=call.id)

    return idempotent(create)


@bp.get("/calls")
@api_call("calls:write")
def list_calls():
    """Newest first; ``state`` (filed, unmatched, dismissed) narrows them; ``next`` is
    the following page's URL."""
    state = request.args.get("state") or None
    if state is not None and state not in tuple(CallState):
        return field_problem("state", "filed, unmatched or dismissed")
    before = request.args.get("before", type=int)
    if before is not None and not 0 < before < 2**63:
        return field_problem("before", "a call id")
    rows = calls.list_page(state, before=before)
    page, more = rows[: calls.PAGE_SIZE], len(rows) > calls.PAGE_SIZE
    places = calls.filed_on(page)
    kept = {"state": state} if state else {}
    next_url = url_for(".list_calls", **kept, before=page[-1].id) if more else None
    return json_response({"items": [call_out(call, places) for call in page], "next": next_url})


@bp.get("/calls/<int:call_id>")
@api_call("calls:write")
def get_call(call_id: int):
    call = calls.call_by_id(call_id)
    if call is None:
        return problem(404, _("Not found."))
    return json_response(call_out(call))
