"""What people read for the SLA's codes."""

from flask_babel import lazy_gettext as _l

from crm.sla.models import Metric, Unit
from crm.sla.rules import Action

METRIC_LABELS = {
    Metric.FIRST_RESPONSE: _l("First response"),
    Metric.NEXT_RESPONSE: _l("Next response"),
    Metric.RESOLUTION: _l("Resolution"),
    Metric.REGULATORY_RESPONSE: _l("Regulatory response"),
    Metric.REGULATORY_FINAL: _l("Regulatory final answer"),
    Metric.REGULATORY_SUMMARY: _l("Summary resolution marker"),
    Metric.REGULATORY_FINAL_LATEST: _l("Regulatory final answer, exceptional cases"),
    Metric.FIRST_CONTACT: _l("First contact"),
    Metric.PAYOUT: _l("Payout"),
    Metric.ESCALATION: _l("Outside body's deadline"),
}

COUNTRY_LABELS = {
    "CN": _l("mainland China"),
    "GB": _l("the UK (England and Wales)"),
    "US": _l("the US (federal holidays)"),
}

UNIT_LABELS = {
    Unit.BUSINESS_MINUTES: _l("business time"),
    Unit.BUSINESS_DAYS: _l("business days"),
    Unit.CALENDAR_DAYS: _l("calendar days"),
}

ACTION_LABELS = {
    Action.NOTIFY_ASSIGNEE: _l("Notify the assignee"),
    Action.NOTIFY_MANAGERS: _l("Notify the managers"),
    Action.RAISE_PRIORITY: _l("Raise the priority"),
    Action.REASSIGN: _l("Reassign"),
}

EVENT_LABELS = {
    "warned": _l("Deadline approaching"),
    "breached": _l("Deadline missed"),
}

PAUSE_REASONS = {
    "awaiting_customer": _l("waiting for the customer"),
    "resolved": _l("resolved, until it was reopened"),
}
