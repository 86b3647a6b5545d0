"""The canonical form of an event and its hash, exactly as ``docs/audit-format.md``
writes them down for independent verifiers."""

import hashlib
import json
from datetime import UTC, datetime
from json.encoder import encode_basestring
from typing import Any

GENESIS_HASH = "0" * 64


def format_instant(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ``: UTC, always six fractional digits."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def digest(text: str) -> str:
    """SHA-256 of personal data (an email, a phone number), which stays out of events."""
    return hashlib.sha256(text.encode()).hexdigest()


def check_json_value(value: Any, path: str = "data") -> None:
    """Refuse what canonical JSON must not hold: floats, non-string keys, odd types."""
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        raise TypeError(f"{path}: floats are not allowed in audit data (use integers)")
    if isinstance(value, list):
        for i, item in enumerate(value):
            check_json_value(item, f"{path}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{path}: keys must be strings")
            check_json_value(item, f"{path}.{key}")
        return
    raise TypeError(f"{path}: {type(value).__name__} is not allowed in audit data")


def event_body(
    *,
    tenant_id: int,
    seq: int,
    occurred_at: datetime,
    actor_kind: str,
    actor_id: str | None,
    actor_label: str,
    ip: str | None,
    action: str,
    subject_type: str,
    subject_id: str | None,
    data: dict[str, Any],
    prev_hash: str,
    chained_at: datetime | None = None,
) -> dict[str, Any]:
    """The event as hashed: every stored column but ``hash`` (``chained_at`` only when it
    is set: events chained before it existed were hashed without it)."""
    body = {
        "tenant_id": tenant_id,
        "seq": seq,
        "occurred_at": format_instant(occurred_at),
        "actor": {"kind": actor_kind, "id": actor_id, "label": actor_label},
        "ip": ip,
        "action": action,
        "subject": {"type": subject_type, "id": subject_id},
        "data": data,
        "prev_hash": prev_hash,
    }
    if chained_at is not None:
        body["chained_at"] = format_instant(chained_at)
    return body


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_text(value: Any) -> str:
    """Canonical JSON as text: sorted keys, no insignificant whitespace (RFC 8785 for
    this data). The app stores every JSON column this way, so ``data`` hashes as stored."""
    return _CANONICAL.encode(value)


def canonical_json(body: dict[str, Any]) -> bytes:
    """The canonical JSON of ``body``, UTF-8 encoded."""
    return canonical_text(body).encode()


def event_hash(prev_hash: str, body: dict[str, Any]) -> str:
    """``SHA-256(prev_hash as 64 ASCII hex digits ‖ canonical JSON)``, lowercase hex."""
    return hashlib.sha256(prev_hash.encode("ascii") + canonical_json(body)).hexdigest()


def _instant(moment: datetime) -> str:
    """ "YYYY-MM-DDTHH:MM:SS.ffffff" in UTC, without the "+00:00" an aware time would add;
    ``moment`` may be naive UTC (as SQLite stores it). Plain ``isoformat()`` is about
    twice as fast as asking it for microseconds, and verification calls this twice per
    event; it leaves the fraction out when it is zero."""
    if moment.tzinfo is not None and moment.utcoffset():
        moment = moment.astimezone(UTC)
    text = moment.isoformat()
    return text[:26] if moment.microsecond else text[:19] + ".000000"


def _string(value: str | None) -> str:
    return "null" if value is None else encode_basestring(value)


def stored_event_hash(
    tenant_id: int,
    seq: int,
    occurred_at: datetime,
    actor_kind: str,
    actor_id: str | None,
    actor_label: str,
    ip: str | None,
    action: str,
    subject_type: str,
    subject_id: str | None,
    data_text: str,
    prev_hash: str,
    chained_at: datetime | None = None,
) -> str:
    """``event_hash(prev_hash, event_body(…))`` written out directly for a stored row, with
    ``data_text`` (the stored, already canonical JSON) spliced in as it is: verification
    hashes what is stored without parsing it. ``occurred_at`` may be naive UTC. Columns
    that are never NULL are quoted without the NULL check: this runs once per event a
    verification reads."""
    quote = encode_basestring
    chained = "" if chained_at is None else f'"chained_at":"{_instant(chained_at)}Z",'
    text = (
        f'{prev_hash}{{"action":{quote(action)},"actor":{{"id":{_string(actor_id)},'
        f'"kind":{quote(actor_kind)},"label":{quote(actor_label)}}},{chained}"data":{data_text},'
        f'"ip":{_string(ip)},"occurred_at":"{_instant(occurred_at)}Z",'
        f'"prev_hash":{quote(prev_hash)},"seq":{int(seq)},'
        f'"subject":{{"id":{_string(subject_id)},"type":{quote(subject_type)}}},"tenant_id":{int(tenant_id)}}}'
    )
    return hashlib.sha256(text.encode()).hexdigest()
