"""The ticket page's forms that end a conversation: Resolve (a final answer, previewed
before it is sent), Merge and Close (each confirmed, without JavaScript)."""

from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, HiddenField
from wtforms.validators import DataRequired

from crm.forms import Form
from crm.tickets import forms
from crm.tickets.resolution import NO_REFUND_REQUESTED


class ResolveForm(forms.ResolveForm):
    no_refund_requested = BooleanField(
        _l("No refund was requested: resolve without a refund decision"),
        description=_l(
            "Only for a question or complaint. A refund is resolved by its decision on the refund page."
        ),
    )
    # The digest of the preview the agent saw; sent with "Send final response".
    previewed = HiddenField()

    @property
    def no_refund_reason(self) -> str | None:
        return NO_REFUND_REQUESTED if self.no_refund_requested.data else None


class MergeForm(forms.MergeForm):
    confirm = BooleanField(
        _l("I confirm: this ticket closes, and the conversation continues in the other one."),
        validators=[DataRequired(_l("Tick the box to confirm the merge."))],
    )


class CloseForm(Form):
    confirm = BooleanField(
        _l("I confirm: close this ticket for good (a closed ticket cannot be reopened)."),
        validators=[DataRequired(_l("Tick the box to confirm closing the ticket."))],
    )
