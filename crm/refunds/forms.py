"""Forms of a ticket's refund page."""

from flask_babel import lazy_gettext as _l
from flask_wtf.file import FileField
from wtforms import (
    DateField,
    DateTimeLocalField,
    HiddenField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from crm.forms import Form
from crm.refunds.labels import BODY_LABELS, ESCALATION_OUTCOME_LABELS, METHOD_LABELS, OUTCOME_LABELS
from crm.refunds.service import Inputs
from crm.webforms import label_choices


class DecisionForm(Form):
    version_number = SelectField(_l("Policy version"), coerce=int, choices=[])
    version_reason = TextAreaField(
        _l("Why another version"),
        validators=[Length(max=5000)],
        render_kw={"rows": 2},
        description=_l("Required when the decision uses another version than the applicable one."),
    )
    paid = StringField(_l("Amount paid"), validators=[Length(max=20)])
    cancellation_date = DateField(
        _l("Cancellation date"),
        validators=[Optional()],
        description=_l("The day the customer cancelled: the day the request came in, unless it was earlier."),
    )
    service_days_total = IntegerField(
        _l("Plan length (days)"), validators=[Optional(), NumberRange(min=1, max=36_500)]
    )
    service_days_used = IntegerField(_l("Days used"), validators=[Optional(), NumberRange(min=0, max=36_500)])
    balance_used = StringField(_l("Prepaid balance used"), validators=[Length(max=20)])
    outcome = SelectField(_l("Refund outcome"), choices=label_choices(OUTCOME_LABELS, blank="—"), default="")
    reason_code = SelectField(_l("Reason"), choices=[], default="")
    clause = StringField(
        _l("Clause relied on"), validators=[Length(max=200)], description=_l("e.g. clause 2, unused balance")
    )
    amount = StringField(_l("Amount to refund"), validators=[Length(max=20)])
    differs_reason = TextAreaField(
        _l("Why the amount differs from the suggestion"), validators=[Length(max=5000)], render_kw={"rows": 2}
    )
    note = TextAreaField(_l("Note for the record"), validators=[Length(max=5000)], render_kw={"rows": 2})
    # The digest of the preview the agent saw, sent back with the button that records it.
    previewed = HiddenField()

    def inputs(self) -> Inputs:
        return Inputs(
            paid=(self.paid.data or "").strip() or None,
            cancellation_date=self.cancellation_date.data,
            service_days_total=self.service_days_total.data,
            service_days_used=self.service_days_used.data,
            balance_used=(self.balance_used.data or "").strip() or None,
        )


class ApprovalForm(Form):
    note = TextAreaField(
        _l("Note"),
        validators=[Length(max=5000)],
        render_kw={"rows": 2},
        description=_l("Required to send a decision back."),
    )
    previewed = HiddenField()


class PayoutForm(Form):
    amount = StringField(_l("Amount paid"), validators=[InputRequired(), Length(max=20)])
    method = SelectField(_l("Method"), choices=label_choices(METHOD_LABELS))
    reference = StringField(_l("Payment reference"), validators=[InputRequired(), Length(max=100)])
    paid_at = DateTimeLocalField(_l("Paid at"), validators=[InputRequired()])
    receipt = FileField(_l("Receipt (optional)"))


class EscalationForm(Form):
    body = SelectField(_l("Outside body"), choices=label_choices(BODY_LABELS, blank="—"), default="")
    case_number = StringField(_l("Its case number"), validators=[InputRequired(), Length(max=100)])
    received_on = DateField(_l("Received on"), validators=[InputRequired()])
    deadline_on = DateField(_l("Deadline it set"), validators=[InputRequired()])


class EscalationOutcomeForm(Form):
    """What an outside body concluded on one escalation (the page shows one per pending
    escalation, each with its own field ids)."""

    outcome = SelectField(
        _l("What it concluded"), choices=label_choices(ESCALATION_OUTCOME_LABELS, blank="—"), default=""
    )
    decided_on = DateField(_l("On"), validators=[InputRequired()])
    note = TextAreaField(_l("Note"), validators=[Optional(), Length(max=2000)])
