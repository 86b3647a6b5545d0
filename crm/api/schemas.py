"""The API's request and response bodies. The same models validate requests and make the
OpenAPI document (``crm.api.openapi``): what is documented is what is checked."""

from datetime import date, datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from crm.input_guard import CONTROL_CHARACTER, CONTROL_CHARACTER_MESSAGE
from crm.leads.models import CallOutcome, Stage
from crm.tickets.models import Reason

Text200 = Field(min_length=1, max_length=200)


class Strict(BaseModel):
    """A request body: no unknown members, and no text the database cannot store (a NUL
    is refused here, as ``crm.input_guard`` refuses it in forms)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*")
    @classmethod
    def _storable(cls, value):
        if isinstance(value, str) and CONTROL_CHARACTER.search(value):
            raise ValueError(str(CONTROL_CHARACTER_MESSAGE))
        return value


class Problem(BaseModel):
    """RFC 9457 problem details; ``errors`` lists each field's error."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[dict[str, str]] | None = None


class Money(BaseModel):
    amount: str = Field(description="A decimal string, e.g. 199.00")
    currency: str = Field(description="ISO 4217, e.g. CNY")


# --- tickets -------------------------------------------------------------------------------------


class TicketIn(Strict):
    """A refund request, with the hosted form's field names and rules; channel ``api``."""

    name: str = Text200
    phone: str = Field(min_length=1, max_length=40)
    email: str | None = Field(default=None, max_length=254)
    account_ref: str | None = Field(default=None, max_length=100)
    purchase_date: date | None = None
    amount: str | None = Field(default=None, max_length=20, description="A decimal string, e.g. 199.00")
    currency: str | None = Field(default=None, max_length=3)
    reason: Reason
    description: str = Field(min_length=1, max_length=20_000)


class Requester(BaseModel):
    name: str
    phone: str | None
    email: str | None
    account_ref: str | None
    locale: str


class TicketOut(BaseModel):
    number: int
    reference: str = Field(description="e.g. RF-1042")
    kind: str
    channel: str
    status: str
    priority: str
    reason: str | None
    requester: Requester
    assignee_id: int | None
    amount: Money | None
    purchase_date: date | None
    created_at: datetime
    received_at: datetime
    respond_by: datetime | None
    due_at: datetime | None
    resolved_at: datetime | None
    updated_at: datetime


class EntryOut(BaseModel):
    id: int
    kind: str
    author_kind: str
    body: str
    public: bool
    created_at: datetime


class ClockOut(BaseModel):
    metric: str
    state: str
    started_at: datetime
    due_at: datetime | None
    met_at: datetime | None
    breached_at: datetime | None


class TicketDetail(TicketOut):
    thread: list[EntryOut]
    clocks: list[ClockOut]


class Snippet(BaseModel):
    before: str
    match: str = Field(description="The words of q as the text has them")
    after: str


class TicketFound(TicketOut):
    snippet: Snippet | None = Field(
        default=None, description="Where the ticket's messages, notes or call logs match q, if they do"
    )


class TicketPage(BaseModel):
    items: list[TicketFound]
    next: str | None = Field(description="The next page's URL, or null on the last page")


# --- leads ---------------------------------------------------------------------------------------


class ConsentIn(Strict):
    """The consent the person gave on the caller's own form: which boxes were ticked, the
    exact text shown and its version (kept as proof), or where other proof is."""

    contact: bool
    marketing: bool = False
    text: str | None = Field(default=None, max_length=1000, description="The contact box's exact wording")
    marketing_text: str | None = Field(default=None, max_length=1000)
    text_version: str | None = Field(default=None, max_length=32)
    evidence_ref: str | None = Field(default=None, max_length=200)


class LeadIn(Strict):
    name: str = Text200
    phone: str = Field(min_length=1, max_length=40)
    email: str | None = Field(default=None, max_length=254)
    company: str | None = Field(default=None, max_length=200)
    need: str | None = Field(default=None, max_length=5_000)
    utm_source: str | None = Field(default=None, max_length=100)
    utm_medium: str | None = Field(default=None, max_length=100)
    utm_campaign: str | None = Field(default=None, max_length=100)
    consent: ConsentIn


class LeadOut(BaseModel):
    reference: str = Field(description="e.g. LD-1001")
    stage: Stage
    name: str
    company: str | None
    phone: str | None
    email: str | None
    source: str
    assignee_id: int | None
    contact_allowed: bool
    marketing_allowed: bool
    first_contact_due_at: datetime | None
    first_contacted_at: datetime | None
    created_at: datetime
    joined: bool = Field(
        default=False, description="True when the request joined an open lead of the same phone"
    )


class LeadPage(BaseModel):
    items: list[LeadOut]
    next: str | None


class StageIn(Strict):
    stage: Stage
    lost_reason: str | None = Field(default=None, max_length=200)


class CallIn(Strict):
    direction: Literal["outbound", "inbound"] = "outbound"
    outcome: CallOutcome
    duration_seconds: int | None = Field(default=None, ge=0, le=86_400)
    note: str | None = Field(default=None, max_length=20_000)


# --- calls from a dialer ----------------------------------------------------------------------------

CallOutcomeName = Literal["answered", "no_answer", "busy", "voicemail", "wrong_number", "refused"]


class DialerCallIn(Strict):
    """A call the dialer made or took. As JSON, or as multipart/form-data with these
    members as fields and the recording as the file part ``recording``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, populate_by_name=True)

    direction: Literal["outbound", "inbound"]
    from_number: str = Field(alias="from", min_length=1, max_length=40, description="As dialled, or E.164")
    to: str = Field(min_length=1, max_length=40)
    started_at: AwareDatetime = Field(description="RFC 3339 with its offset, e.g. 2026-12-04T09:30:00Z")
    duration_seconds: int = Field(ge=0, le=86_400)
    outcome: CallOutcomeName
    note: str | None = Field(default=None, max_length=20_000)
    external_id: str | None = Field(
        default=None, max_length=100, description="The dialer's own id of the call"
    )
    reference: str | None = Field(
        default=None,
        max_length=30,
        description="File it on this ticket (RF-1042) or lead (LD-1001) instead of matching by number",
    )
    recording_url: str | None = Field(
        default=None, max_length=500, description="Where the desk fetches the recording from"
    )
    recording_sha256: str | None = Field(
        default=None, min_length=64, max_length=64, description="The recording's SHA-256, with recording_url"
    )


class RecordingOut(BaseModel):
    state: Literal["stored", "pending", "failed"]
    sha256: str | None
    size: int | None
    content_type: str | None
    url: str | None
    error: str | None


class DialerCallOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: int
    external_id: str | None
    direction: str
    from_number: str = Field(alias="from")
    to: str
    started_at: datetime
    duration_seconds: int
    outcome: str
    note: str
    state: Literal["filed", "unmatched", "dismissed"]
    unmatched_reason: str | None
    ticket: str | None = Field(description="The reference of the ticket it is filed on")
    lead: str | None = Field(description="The reference of the lead it is filed on")
    recording: RecordingOut | None
    created_at: datetime


class DialerCallPage(BaseModel):
    items: list[DialerCallOut]
    next: str | None


# --- refunds ---------------------------------------------------------------------------------------


class PayoutIn(Strict):
    """Money that went out for the ticket's approved refund, as billing confirms it."""

    amount: str = Field(min_length=1, max_length=20, description="A decimal string, e.g. 199.00")
    method: Literal["original_payment", "bank_transfer", "alipay", "wechat_pay", "cash", "other"]
    reference: str = Field(min_length=1, max_length=100, description="The payment's reference at the bank")
    paid_at: AwareDatetime


class PayoutOut(BaseModel):
    id: int
    decision_id: int
    amount: Money
    method: str
    reference: str
    paid_at: datetime
    paid_in_full: bool


# --- do not contact --------------------------------------------------------------------------------


class DncEntryOut(BaseModel):
    id: int
    kind: str
    value: str
    reason: str
    source: str
    created_at: datetime


class DncCheck(BaseModel):
    allowed: bool = Field(description="False when the number or address is on the list")
    reason: str | None
    entries: list[DncEntryOut]


class DncIn(Strict):
    phone: str | None = Field(default=None, max_length=40)
    email: str | None = Field(default=None, max_length=254)
    reason: str = Field(min_length=1, max_length=500)
    source: Literal["call", "12321", "import", "staff"] = "staff"


class DncRemoveIn(Strict):
    reason: str = Field(min_length=1, max_length=500)


# --- audit -----------------------------------------------------------------------------------------


class AuditEventOut(BaseModel):
    seq: int
    occurred_at: datetime
    actor_kind: str
    actor_id: str | None
    actor_label: str
    action: str
    subject_type: str
    subject_id: str | None
    data: dict
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    items: list[AuditEventOut]
    next: str | None


# --- ticket actions --------------------------------------------------------------------------------


class MessageIn(Strict):
    body: str = Field(min_length=1, max_length=20_000)


class TicketPatch(Strict):
    """What a system may change on a ticket, with If-Match: its assignee, priority, and
    status (open again, waiting for the customer, or closed)."""

    assignee_id: int | None = Field(default=None, ge=1, le=2**63 - 1)
    unassign: bool = False
    priority: Literal["low", "normal", "high", "urgent"] | None = None
    status: Literal["open", "closed"] | None = None
