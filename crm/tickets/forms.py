"""The agent workspace's forms: the queue's filters, a ticket's actions, tickets staff open
themselves, and canned replies; with the labels staff see for each coded value."""

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask_babel import lazy_gettext as _l
from wtforms import (
    DateField,
    DateTimeLocalField,
    EmailField,
    FileField,
    MultipleFileField,
    SearchField,
    SelectChoice,
    SelectField,
    StringField,
    TelField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Length, Optional, ValidationError

from crm.files.sniff import ACCEPTED_FILES
from crm.forms import Form
from crm.i18n import LOCALE_NAMES
from crm.sla.labels import METRIC_LABELS
from crm.tickets import queue
from crm.tickets.labels import (
    CHANNEL_LABELS,
    DIRECTION_LABELS,
    KIND_LABELS,
    OUTCOME_LABELS,
    PRIORITY_LABELS,
    REASON_LABELS,
    STAFF_CHANNELS,
    STATUS_LABELS,
)
from crm.tickets.models import Priority
from crm.tickets.service import CALL_DIRECTIONS, CALL_OUTCOMES, MAX_DESCRIPTION
from crm.webforms import label_choices
from tenants import current_tenant

VIEW_LABELS = {
    "mine": _l("Mine"),
    "unassigned": _l("Unassigned"),
    "needs_manager": _l("Need a manager"),
    "breaching_soon": _l("Breaching soon"),
    "breached": _l("Breached"),
    "open": _l("New and open"),
    "awaiting_customer": _l("Awaiting customer"),
    "pending_approval": _l("Awaiting approval"),
    "resolved": _l("Resolved"),
    "closed": _l("Closed"),
    "all": _l("All"),
}
SORT_LABELS = {"oldest": _l("Oldest first"), "newest": _l("Newest first"), "due": _l("Next due")}
REQUIRED = _l("This field is required.")
ANY = _l("Any")


def _too_long(n: int) -> Length:
    return Length(max=n, message=_l("Use at most %(n)d characters.", n=n))


def _message_field(label, **kwargs) -> TextAreaField:
    return TextAreaField(
        label,
        validators=[DataRequired(REQUIRED), _too_long(MAX_DESCRIPTION)],
        render_kw={"rows": kwargs.pop("rows", 5)},
        **kwargs,
    )


def parse_duration(text: str) -> int:
    """Seconds in a call length typed as ``330``, ``5:30`` or ``1:05:30``."""
    parts = (text or "").strip().split(":")
    if not 1 <= len(parts) <= 3 or not all(part.isdigit() and len(part) <= 5 for part in parts):
        raise ValueError(text)
    numbers = [int(part) for part in parts]
    if any(number >= 60 for number in numbers[1:]):
        raise ValueError(text)
    seconds = 0
    for number in numbers:
        seconds = seconds * 60 + number
    return seconds


class DurationField(StringField):
    """A call's length as typed (``5:30``); ``data`` is the number of seconds."""

    def process_formdata(self, valuelist):
        if not valuelist or not valuelist[0].strip():
            self.data = None
            return
        try:
            self.data = parse_duration(valuelist[0])
        except ValueError:
            self.data = None
            raise ValueError(_l("Enter the length as minutes:seconds, for example 5:30.")) from None

    def _value(self) -> str:
        if self.raw_data:
            return self.raw_data[0]
        return "" if self.data is None else f"{self.data // 60}:{self.data % 60:02d}"


OUTCOME_FILTER_LABELS = {
    "met_on_time": _l("Met on time"),
    "met_late": _l("Met late"),
    "breached_open": _l("Breached, not met"),
    "not_yet_due": _l("Not yet due"),
}


def _local_midnight(day: date | None) -> datetime | None:
    """The start of ``day`` in the tenant's time zone."""
    if day is None:
        return None
    return datetime.combine(day, time(0), ZoneInfo(current_tenant().timezone))


# --- the queue ---------------------------------------------------------------------------


class QueueForm(Form):
    """The queue's view, search and filters: a GET form, so a queue can be bookmarked."""

    class Meta:
        csrf = False

    view = SelectField(_l("View"), choices=label_choices(VIEW_LABELS), default=queue.DEFAULT_VIEW)
    q = SearchField(
        _l("Search"),
        validators=[Optional(), _too_long(200)],
        render_kw={"placeholder": _l("Ticket number, name, phone, email, account, or words said")},
    )
    status = SelectField(_l("Status"), choices=label_choices(STATUS_LABELS, blank=ANY), default="")
    kind = SelectField(_l("Kind"), choices=label_choices(KIND_LABELS, blank=ANY), default="")
    priority = SelectField(_l("Priority"), choices=label_choices(PRIORITY_LABELS, blank=ANY), default="")
    reason = SelectField(_l("Reason"), choices=label_choices(REASON_LABELS, blank=ANY), default="")
    # Choices are the tenant's staff, set by the view.
    assignee = SelectField(_l("Assignee"), choices=[], default="")
    sort = SelectField(_l("Sort"), choices=label_choices(SORT_LABELS), default=queue.DEFAULT_SORT)
    after = StringField(validators=[Optional(), Length(max=60)])
    # Opened from a report's number: tickets by one of their clocks.
    clock = SelectField(_l("Deadline"), choices=label_choices(METRIC_LABELS, blank=ANY), default="")
    outcome = SelectField(
        _l("Deadline outcome"), choices=label_choices(OUTCOME_FILTER_LABELS, blank=ANY), default=""
    )
    due_from = DateField(_l("Due from"), validators=[Optional()])
    due_to = DateField(_l("Due to"), validators=[Optional()])

    def set_assignees(self, users) -> None:
        self.assignee.choices = [SelectChoice("", ANY), SelectChoice(queue.UNASSIGNED, _l("Unassigned"))] + [
            SelectChoice(str(user.id), user.display_name) for user in users
        ]

    def validate_after(self, field) -> None:
        if field.data:
            try:
                queue.Cursor.decode(field.data.strip())
            except ValueError:
                raise ValidationError(_l("This page link is not valid; start from the first page.")) from None

    def to_query(self) -> queue.QueueQuery:
        assignee = self.assignee.data or None
        return queue.QueueQuery(
            view=self.view.data,
            q=(self.q.data or "").strip(),
            status=self.status.data or None,
            kind=self.kind.data or None,
            priority=self.priority.data or None,
            reason=self.reason.data or None,
            assignee=int(assignee) if assignee and assignee.isdigit() else assignee,
            # The deadline views list the nearest deadline first unless asked otherwise.
            sort="due" if self.view.data in queue.DUE_VIEWS and not self.sort.raw_data else self.sort.data,
            clock=self.clock.data or None,
            outcome=self.outcome.data or None,
            due_from=_local_midnight(self.due_from.data),
            due_to=_local_midnight(self.due_to.data + timedelta(days=1)) if self.due_to.data else None,
        )

    def cursor(self) -> queue.Cursor | None:
        # Optional() passes a blank value ("\r\n") without the check below: it is the
        # first page, not a cursor to decode.
        text = (self.after.data or "").strip()
        return queue.Cursor.decode(text) if text else None


# --- a ticket's actions ------------------------------------------------------------------


class ReplyForm(Form):
    body = _message_field(_l("Reply to the customer"), rows=6)
    attachments = MultipleFileField(_l("Attach files"), render_kw={"accept": ACCEPTED_FILES})


class NoteForm(Form):
    body = _message_field(
        _l("Internal note"), description=_l("Only staff see notes. The customer never does.")
    )
    attachments = MultipleFileField(_l("Attach files"), render_kw={"accept": ACCEPTED_FILES})


class RequestInfoForm(Form):
    body = _message_field(
        _l("What do you need from the customer?"),
        description=_l("The ticket waits for the customer's answer."),
    )


class ResolveForm(Form):
    body = _message_field(
        _l("Final answer to the customer"),
        description=_l("The outcome and the reason for it. The customer can say they are not satisfied."),
    )


class CallForm(Form):
    direction = SelectField(
        _l("Direction"), choices=label_choices({d: DIRECTION_LABELS[d] for d in CALL_DIRECTIONS})
    )
    phone = TelField(_l("Phone number"), validators=[DataRequired(REQUIRED), _too_long(40)])
    duration = DurationField(
        _l("Length"),
        # InputRequired, not DataRequired: 0:00 is a length, and what cannot be read
        # keeps its own message.
        validators=[InputRequired(REQUIRED)],
        description=_l("minutes:seconds"),
        render_kw={"placeholder": "5:30", "inputmode": "numeric"},
    )
    outcome = SelectField(_l("Outcome"), choices=label_choices({o: OUTCOME_LABELS[o] for o in CALL_OUTCOMES}))
    notes = TextAreaField(
        _l("What was said"), validators=[Optional(), _too_long(MAX_DESCRIPTION)], render_kw={"rows": 3}
    )
    recording = FileField(_l("Recording (optional)"), render_kw={"accept": ".mp3,.wav,.m4a"})


class AssignForm(Form):
    # Choices are the tenant's active staff, set by the view.
    assignee_id = SelectField(_l("Assignee"), choices=[])

    def set_assignees(self, users) -> None:
        self.assignee_id.choices = [SelectChoice("", _l("Unassigned"))] + [
            SelectChoice(str(user.id), user.display_name) for user in users
        ]


class PriorityForm(Form):
    priority = SelectField(_l("Priority"), choices=label_choices(PRIORITY_LABELS))


class ReceivedAtForm(Form):
    """When a complaint a staff member logged late truly came in."""

    received_at = DateTimeLocalField(
        _l("It came in at"),
        format=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"],
        validators=[InputRequired(REQUIRED)],
        description=_l("In the desk's time zone. Regulatory deadlines count from this time."),
    )
    reason = TextAreaField(
        _l("Why the ticket was logged later"),
        validators=[DataRequired(REQUIRED), _too_long(500)],
        render_kw={"rows": 2},
    )


class MergeForm(Form):
    target = StringField(
        _l("Merge into ticket"),
        validators=[DataRequired(REQUIRED), _too_long(30)],
        description=_l("Another open ticket of the same customer. This one closes."),
    )


# --- tickets staff open, canned replies --------------------------------------------------


class NewTicketForm(Form):
    channel = SelectField(
        _l("Came in by"), choices=label_choices({c: CHANNEL_LABELS[c] for c in STAFF_CHANNELS})
    )
    kind = SelectField(_l("Kind"), choices=label_choices(KIND_LABELS))
    priority = SelectField(_l("Priority"), choices=label_choices(PRIORITY_LABELS), default=Priority.NORMAL)
    reason = SelectField(
        _l("Reason"), choices=label_choices(REASON_LABELS, blank=_l("Not given")), default=""
    )
    name = StringField(_l("Customer's name"), validators=[DataRequired(REQUIRED), _too_long(200)])
    phone = TelField(
        _l("Phone number"),
        validators=[Optional(), _too_long(40)],
        description=_l("A phone number or an email is needed, to find the customer's other requests."),
    )
    email = EmailField(_l("Email"), validators=[Optional(), _too_long(254)])
    account_ref = StringField(_l("Account or contract number"), validators=[Optional(), _too_long(100)])
    locale = SelectField(_l("Customer's language"), choices=label_choices(LOCALE_NAMES))
    description = _message_field(
        _l("What the customer asks"),
        description=_l("In the customer's words where you can: this is the request on record."),
        rows=6,
    )
    # A referral from an outside body (channel "regulator referral"): its case and deadline.
    referral_body = SelectField(_l("Outside body"), choices=[], default="")
    referral_case_number = StringField(_l("Its case number"), validators=[Optional(), _too_long(100)])
    referral_received_on = DateField(_l("Received on"), validators=[Optional()])
    referral_deadline_on = DateField(_l("Deadline it set"), validators=[Optional()])


class CannedReplyForm(Form):
    title = StringField(_l("Title"), validators=[DataRequired(REQUIRED), _too_long(100)])
    body = _message_field(
        _l("Text"),
        description=_l(
            "Placeholders: {customer_name}, {ticket_number} and {deadline} are filled in for each ticket."
        ),
        rows=8,
    )
