"""The admin's settings form for their organisation."""

from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, IntegerField, SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from crm.forms import Form
from crm.provisioning.models import (
    CONSENT_RETENTION_DAYS_MIN,
    IDLE_MINUTES_MAX,
    IDLE_MINUTES_MIN,
    AgentDisplay,
)


class SettingsForm(Form):
    ticket_prefix = StringField(
        _l("Ticket number prefix"),
        validators=[InputRequired(), Length(max=8)],
        description=_l("Letters before each ticket number, as in RF-1042."),
    )
    form_submissions_per_hour = IntegerField(
        _l("Refund requests per hour from one address"),
        validators=[InputRequired(), NumberRange(min=1, max=10_000)],
        description=_l("More are refused for an hour, against abuse."),
    )
    agent_display = SelectField(
        _l("Customers see who answers as"),
        choices=[
            SelectChoice(AgentDisplay.FIRST_NAME, _l("The agent's first name")),
            SelectChoice(AgentDisplay.TEAM, _l("The team's name")),
        ],
    )
    team_name = StringField(_l("Team name"), validators=[InputRequired(), Length(max=100)])
    country = StringField(
        _l("Country for phone numbers"),
        validators=[InputRequired(), Length(min=2, max=2)],
        description=_l(
            "Two letters, such as CN: phone numbers without a country code are read as this country's."
        ),
    )
    idle_timeout_minutes = IntegerField(
        _l("Sign staff out after this many minutes without activity"),
        validators=[Optional(), NumberRange(min=IDLE_MINUTES_MIN, max=IDLE_MINUTES_MAX)],
        description=_l(
            "Between %(min)d and %(max)d minutes; 480 is 8 hours. Signing in again takes a password.",
            min=IDLE_MINUTES_MIN,
            max=IDLE_MINUTES_MAX,
        ),
    )
    support_address = StringField(
        _l("Support address for customers' email"),
        validators=[Optional(), Length(max=254)],
        description=_l(
            "Such as support@example.com. The desk's mail to customers says to reply to it (plus a "
            "code naming the ticket); have your mail server pipe it to flask mail deliver."
        ),
    )
    require_two_factor = BooleanField(
        _l("Require two-step sign-in for managers and admins"),
        description=_l("They set it up at their next sign-in; until then they reach no other page."),
    )
    accepted_currencies = StringField(
        _l("Other currencies accepted on refunds"),
        validators=[Optional(), Length(max=200)],
        description=_l(
            "ISO codes such as USD, HKD, separated by commas or spaces. "
            "Empty: only your organisation's own currency."
        ),
    )
    privacy_notice = TextAreaField(
        _l("Privacy notice on the refund form"),
        validators=[Optional(), Length(max=5000)],
        render_kw={"rows": 4},
    )
    approval_threshold = IntegerField(
        _l("Refunds that need a manager's approval: above (whole currency units)"),
        validators=[InputRequired(), NumberRange(min=0, max=10**9)],
        description=_l(
            "A second person, a manager, approves larger refunds and every denial of an escalated ticket."
        ),
    )
    refund_reasons = TextAreaField(
        _l("Reason codes for refund decisions"),
        validators=[Optional(), Length(max=5000)],
        render_kw={"rows": 5},
        description=_l(
            'One per line, "code | label", e.g. "goodwill | Goodwill gesture". Empty for the defaults.'
        ),
    )
    outside_options_en = TextAreaField(
        _l("Where a customer can turn if not satisfied (English)"),
        validators=[Optional(), Length(max=5000)],
        render_kw={"rows": 4},
        description=_l(
            "Stated in every final response. Empty for the default: consumer association, 12315, "
            "the telecom regulator, a court."
        ),
    )
    outside_options_zh = TextAreaField(
        _l("Where a customer can turn if not satisfied (Chinese)"),
        validators=[Optional(), Length(max=5000)],
        render_kw={"rows": 4},
    )
    # Leads (issue 13)
    first_contact_minutes = IntegerField(
        _l("First call within (business minutes)"),
        validators=[Optional(), NumberRange(min=5, max=7 * 24 * 60)],
        description=_l("The free-trial form promises a call within this time, on the business calendar."),
    )
    unreachable_after_attempts = IntegerField(
        _l("Unreachable after this many unanswered calls in a row"),
        validators=[Optional(), NumberRange(min=1, max=50)],
    )
    consent_retention_days = IntegerField(
        _l("Keep proof of consent for (days)"),
        validators=[Optional(), NumberRange(min=CONSENT_RETENTION_DAYS_MIN, max=10 * 366)],
        description=_l("At least five months (153 days), as MIIT requires."),
    )
    consent_contact_text = TextAreaField(
        _l("Wording of the box that asks to be called"),
        validators=[Optional(), Length(max=1000)],
        render_kw={"rows": 2},
        description=_l(
            "Empty for the default, in the page's language. A change starts a new version of the proof."
        ),
    )
    consent_marketing_text = TextAreaField(
        _l("Wording of the box for later offers"),
        validators=[Optional(), Length(max=1000)],
        render_kw={"rows": 2},
    )
