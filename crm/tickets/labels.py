"""What staff read for each coded value of a ticket, in their language."""

from flask_babel import lazy_gettext as _l

from crm.tickets.models import Channel, Kind, Priority, Reason, Status

STATUS_LABELS = {
    Status.NEW: _l("New"),
    Status.OPEN: _l("Open"),
    Status.AWAITING_CUSTOMER: _l("Awaiting customer"),
    Status.PENDING_APPROVAL: _l("Awaiting approval"),
    Status.RESOLVED: _l("Resolved"),
    Status.CLOSED: _l("Closed"),
    Status.WITHDRAWN: _l("Withdrawn"),
}
KIND_LABELS = {Kind.REFUND: _l("Refund"), Kind.COMPLAINT: _l("Complaint"), Kind.INQUIRY: _l("Inquiry")}
CHANNEL_LABELS = {
    Channel.WEB_FORM: _l("Web form"),
    Channel.PHONE: _l("Phone"),
    Channel.EMAIL: _l("Email"),
    Channel.API: _l("API"),
    Channel.REGULATOR_REFERRAL: _l("Regulator referral"),
}
STAFF_CHANNELS = (Channel.PHONE, Channel.EMAIL, Channel.REGULATOR_REFERRAL)
PRIORITY_LABELS = {
    Priority.LOW: _l("Low"),
    Priority.NORMAL: _l("Normal"),
    Priority.HIGH: _l("High"),
    Priority.URGENT: _l("Urgent"),
}
# Staff wording; the hosted form asks the customer in the first person (crm.portal.forms).
REASON_LABELS = {
    Reason.SERVICE_NOT_AS_DESCRIBED: _l("Not as described"),
    Reason.UNUSED_BALANCE: _l("Unused balance"),
    Reason.CANCELLED_CONTRACT: _l("Cancelled contract"),
    Reason.UNAUTHORIZED_CHARGE: _l("Unauthorised charge"),
    Reason.DUPLICATE_CHARGE: _l("Duplicate charge"),
    Reason.OTHER: _l("Other"),
}
DIRECTION_LABELS = {"inbound": _l("Inbound"), "outbound": _l("Outbound")}
OUTCOME_LABELS = {
    "answered": _l("Answered"),
    "no_answer": _l("No answer"),
    "busy": _l("Busy"),
    "voicemail": _l("Voicemail"),
    "wrong_number": _l("Wrong number"),
    "refused": _l("Refused: does not want to be called"),
}
