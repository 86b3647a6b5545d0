"""Forms of the refund policy pages."""

from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, DateTimeLocalField, IntegerField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from crm.errors import DomainError
from crm.forms import Form
from crm.policies.service import MAX_TEXT


class DraftForm(Form):
    text_en = TextAreaField(
        _l("Policy text, English (Markdown)"), validators=[Length(max=MAX_TEXT)], render_kw={"rows": 12}
    )
    text_zh_CN = TextAreaField(
        _l("Policy text, Simplified Chinese (Markdown)"),
        validators=[Length(max=MAX_TEXT)],
        render_kw={"rows": 12},
    )
    cooling_off_days = IntegerField(
        _l("Cooling-off period (days)"),
        validators=[InputRequired(), NumberRange(min=0, max=3650)],
        description=_l("A full refund within this many days of purchase."),
    )
    prorate_unused_balance = BooleanField(_l("Refund unused balance or service time pro rata"))
    non_refundable_items = TextAreaField(
        _l("Non-refundable items"),
        validators=[Length(max=10_000)],
        render_kw={"rows": 3},
        description=_l('One per line: "Number activation fee | 50.00".'),
    )
    handling_fee_percent = StringField(
        _l("Handling fee (percent)"), validators=[InputRequired(), Length(max=10)], description=_l("e.g. 5")
    )
    handling_fee_cap = StringField(
        _l("Handling fee cap"), validators=[Length(max=20)], description=_l("Empty for no cap; e.g. 30.00")
    )
    payout_days = IntegerField(
        _l("Payout within (days)"),
        validators=[InputRequired(), NumberRange(min=1, max=365)],
        description=_l("Calendar days after approval within which the money must be paid."),
    )
    required_evidence = TextAreaField(
        _l("Evidence the customer must give"),
        validators=[Length(max=2000)],
        render_kw={"rows": 3},
        description=_l("One per line, e.g. invoice."),
    )

    def texts(self) -> dict[str, str]:
        return {"en": self.text_en.data or "", "zh_CN": self.text_zh_CN.data or ""}

    def terms(self) -> dict:
        """The terms as the JSON a policy file holds; Terms validates them."""
        items = []
        for number, line in enumerate((self.non_refundable_items.data or "").splitlines(), start=1):
            if not line.strip():
                continue
            name, separator, amount = line.rpartition("|")
            if not separator or not name.strip():
                raise DomainError(
                    _l('Line %(n)d: write "name | amount", e.g. "Number activation fee | 50.00".', n=number),
                    "non_refundable_items",
                )
            items.append({"name": name.strip(), "amount": amount.strip()})
        return {
            "cooling_off_days": self.cooling_off_days.data,
            "prorate_unused_balance": bool(self.prorate_unused_balance.data),
            "non_refundable_items": items,
            "handling_fee_percent": (self.handling_fee_percent.data or "").strip(),
            "handling_fee_cap": (self.handling_fee_cap.data or "").strip() or None,
            "payout_days": self.payout_days.data,
            "required_evidence": [
                line.strip() for line in (self.required_evidence.data or "").splitlines() if line.strip()
            ],
        }

    def fill(self, texts: dict[str, str], terms: dict) -> None:
        self.text_en.data, self.text_zh_CN.data = texts.get("en", ""), texts.get("zh_CN", "")
        self.cooling_off_days.data = terms["cooling_off_days"]
        self.prorate_unused_balance.data = terms["prorate_unused_balance"]
        self.non_refundable_items.data = "\n".join(
            f"{item['name']} | {item['amount']}" for item in terms.get("non_refundable_items", ())
        )
        self.handling_fee_percent.data = terms["handling_fee_percent"]
        self.handling_fee_cap.data = terms.get("handling_fee_cap") or ""
        self.payout_days.data = terms["payout_days"]
        self.required_evidence.data = "\n".join(terms.get("required_evidence", ()))


class PublishForm(Form):
    effective_from = DateTimeLocalField(
        _l("Takes effect"),
        validators=[Optional()],
        description=_l("In your organisation's time zone; empty for now. It may be in the future."),
    )
    confirm = BooleanField(
        _l("I understand that a published version can never be changed."), validators=[InputRequired()]
    )
