"""The reports' period picker and filters: a GET form, so a report can be bookmarked."""

from flask_babel import lazy_gettext as _l
from wtforms import DateField, SelectChoice, SelectField
from wtforms.validators import Optional

from crm.access import Role
from crm.auth import service as auth
from crm.columns import utcnow
from crm.errors import DomainError
from crm.forms import Form
from crm.reports import periods, sla
from crm.tickets.forms import ANY
from crm.tickets.labels import CHANNEL_LABELS, KIND_LABELS, PRIORITY_LABELS, REASON_LABELS
from crm.webforms import label_choices
from tenants import current_tenant

CUSTOM = "custom"
GROUP_LABELS = {
    "metric": _l("Metric"),
    "assignee": _l("Assignee"),
    "reason": _l("Reason"),
    "week": _l("Week"),
}


class ReportForm(Form):
    class Meta:
        csrf = False

    period = SelectField(
        _l("Period"),
        choices=[
            *(SelectChoice(p, label) for p, label in periods.PRESET_LABELS.items()),
            SelectChoice(CUSTOM, _l("From–to")),
        ],
        default="last_month",
    )
    first_day = DateField(_l("From"), validators=[Optional()])
    last_day = DateField(_l("To"), validators=[Optional()])
    kind = SelectField(_l("Kind"), choices=label_choices(KIND_LABELS, blank=ANY), default="")
    reason = SelectField(_l("Reason"), choices=label_choices(REASON_LABELS, blank=ANY), default="")
    channel = SelectField(_l("Channel"), choices=label_choices(CHANNEL_LABELS, blank=ANY), default="")
    priority = SelectField(_l("Priority"), choices=label_choices(PRIORITY_LABELS, blank=ANY), default="")
    assignee = SelectField(_l("Assignee"), choices=[], default="")
    by = SelectField(
        _l("Group by"), choices=[SelectChoice(g, GROUP_LABELS[g]) for g in sla.GROUPS], default="metric"
    )

    def set_assignees(self, users) -> None:
        self.assignee.choices = [
            SelectChoice("", ANY),
            *(SelectChoice(str(u.id), u.display_name) for u in users),
        ]

    def filters(self) -> sla.Filters:
        return sla.Filters(
            kind=self.kind.data or None,
            reason=self.reason.data or None,
            channel=self.channel.data or None,
            priority=self.priority.data or None,
            assignee=int(self.assignee.data) if self.assignee.data else None,
        )


def read_period(args) -> tuple[ReportForm, periods.Period | None]:
    """The period picker and filters from a query string, and the period they give
    (None, with the error beside its field, when they give none)."""
    form = ReportForm(args)
    form.set_assignees(user for user in auth.list_users() if user.role != Role.AUDITOR)
    if not form.validate():
        return form, None
    timezone = current_tenant().timezone
    try:
        if form.period.data == CUSTOM:
            return form, periods.between(form.first_day.data, form.last_day.data, timezone)
        return form, periods.preset(form.period.data, periods.local_today(timezone, utcnow()), timezone)
    except DomainError as error:
        getattr(form, error.field or "period").errors.append(error.message)
        return form, None
