"""What an SLA policy and the deadline rules say, as plain data: their JSON documents,
their validation, the built-in regulatory profiles, and the defaults a new tenant gets.

The documents are what a ``ConfigVersion`` stores; everything here is pure.
"""

import re
from dataclasses import asdict, dataclass
from typing import Any

from flask_babel import lazy_gettext as _l

from crm.errors import DomainError
from crm.sla.businesstime import CalendarSpec
from crm.sla.models import Metric, Unit
from crm.sla.official import COUNTRIES
from crm.tickets.models import Channel, Kind, Priority

ANY = "*"
DEFAULT_CALENDAR = "Business hours"
DEFAULT_KEY = "default"
MAX_RULES = 50
MAX_TARGET_MINUTES = 365 * 24 * 60
MAX_DAYS = 366


class Action:
    NOTIFY_ASSIGNEE = "notify_assignee"
    NOTIFY_MANAGERS = "notify_managers"
    RAISE_PRIORITY = "raise_priority"
    REASSIGN = "reassign"


ACTIONS = (Action.NOTIFY_ASSIGNEE, Action.NOTIFY_MANAGERS, Action.RAISE_PRIORITY, Action.REASSIGN)
MANAGERS_QUEUE = "managers"


@dataclass(frozen=True)
class Rule:
    """One line of an SLA policy: which tickets it covers and what it promises them."""

    kind: str = ANY
    priority: str = ANY
    channel: str = ANY
    calendar: str = DEFAULT_CALENDAR
    first_response: int | None = None  # business minutes; None: no target
    next_response: int | None = None
    resolution: int | None = None
    warn_percent: int = 80
    actions: tuple[str, ...] = (Action.NOTIFY_ASSIGNEE, Action.NOTIFY_MANAGERS)
    reassign_to: int | str | None = None  # a user id, or MANAGERS_QUEUE

    @property
    def scope(self) -> tuple[str, str, str]:
        return (self.kind, self.priority, self.channel)

    def matches(self, kind: str, priority: str, channel: str) -> bool:
        return all(
            wanted in (ANY, value)
            for wanted, value in ((self.kind, kind), (self.priority, priority), (self.channel, channel))
        )

    def target(self, metric: Metric) -> int | None:
        return {
            Metric.FIRST_RESPONSE: self.first_response,
            Metric.NEXT_RESPONSE: self.next_response,
            Metric.RESOLUTION: self.resolution,
        }.get(metric)


@dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...]

    def match(self, kind: str, priority: str, channel: str) -> tuple[int, Rule] | None:
        """The first rule that covers the ticket, with its position (1-based)."""
        for position, rule in enumerate(self.rules, start=1):
            if rule.matches(kind, priority, channel):
                return position, rule
        return None

    def to_json(self) -> dict[str, Any]:
        return {"rules": [{**asdict(rule), "actions": list(rule.actions)} for rule in self.rules]}


@dataclass(frozen=True)
class Deadline:
    """One deadline a profile sets, counted from receipt and never paused."""

    metric: Metric
    days: int
    unit: Unit
    alerts: bool = True  # False: a marker reported afterwards, never an alarm


@dataclass(frozen=True)
class Profile:
    """Deadlines an outside body sets. A built-in profile's name and source are
    translated; a tenant's own are shown as written.

    With a ``country``, the days are that jurisdiction's: local midnight is in its time
    zone and working days are its official ones (``crm.sla.official``), whatever the
    desk's hours. Without one (a tenant's own profile, unless it names a country) they
    are the rules' calendar's. ``roll_forward``: a period whose last day is not a
    working day ends at the end of the next working day."""

    code: str
    name: str
    source: str
    deadlines: tuple[Deadline, ...]
    builtin: bool = True
    country: str | None = None
    roll_forward: bool = False

    @property
    def timezone(self) -> str | None:
        return COUNTRIES[self.country].timezone if self.country else None


BUILTIN_PROFILES: dict[str, Profile] = {
    profile.code: profile
    for profile in (
        Profile(
            "cn-telecom",
            _l("China: telecom complaint, 15 calendar days"),
            _l(
                "MIIT Telecommunications Service Specifications (电信服务规范): a telecom operator "
                "answers a user's complaint within 15 days of receiving it."
            ),
            (Deadline(Metric.REGULATORY_FINAL, 15, Unit.CALENDAR_DAYS),),
            country="CN",
            # Civil Code art. 203: a period whose last day is a statutory holiday ends on
            # the day after the holiday.
            roll_forward=True,
        ),
        Profile(
            "cn-12315-odr",
            _l("China: 12315 platform ODR, 10 business days"),
            _l(
                "SAMR 12315 platform online dispute resolution (ODR): the business negotiates with "
                "the consumer within 10 working days of the complaint being passed to it."
            ),
            (Deadline(Metric.REGULATORY_FINAL, 10, Unit.BUSINESS_DAYS),),
            country="CN",
            roll_forward=True,
        ),
        Profile(
            "cn-12321",
            _l("China: 12321 referral, 15 working days"),
            _l(
                "A complaint about unwanted calls or messages forwarded by the 12321 reporting "
                "centre (12321网络不良与垃圾信息举报受理中心): the provider answers within 15 working days "
                "of receiving it."
            ),
            (Deadline(Metric.REGULATORY_FINAL, 15, Unit.BUSINESS_DAYS),),
            country="CN",
            roll_forward=True,
        ),
        Profile(
            "uk-fca",
            _l("UK FCA: final response within 8 weeks"),
            _l(
                "FCA Handbook DISP 1.6: a final response within eight weeks of receipt; DISP 1.5: "
                "a summary resolution by the close of the third business day after receipt."
            ),
            (
                Deadline(Metric.REGULATORY_FINAL, 56, Unit.CALENDAR_DAYS),
                Deadline(Metric.REGULATORY_SUMMARY, 3, Unit.BUSINESS_DAYS, alerts=False),
            ),
            country="GB",
        ),
        Profile(
            "uk-psd",
            _l("UK payment services: final response within 15 business days"),
            _l(
                "Payment Services Regulations 2017 reg. 101 and FCA Handbook DISP 1.6.2A: a final "
                "response to a payment services complaint by the end of the fifteenth business day "
                "after receipt; in exceptional situations beyond the firm's control, a holding reply "
                "by then saying why, and the final response by the end of the thirty-fifth business day."
            ),
            (
                Deadline(Metric.REGULATORY_FINAL, 15, Unit.BUSINESS_DAYS),
                Deadline(Metric.REGULATORY_FINAL_LATEST, 35, Unit.BUSINESS_DAYS),
            ),
            country="GB",
        ),
        Profile(
            "us-cfpb",
            _l("US CFPB: respond in 15 days, final in 60"),
            _l(
                "CFPB company portal: companies respond to a complaint within 15 days and give "
                "a final response within 60 days."
            ),
            (
                Deadline(Metric.REGULATORY_RESPONSE, 15, Unit.CALENDAR_DAYS),
                Deadline(Metric.REGULATORY_FINAL, 60, Unit.CALENDAR_DAYS),
            ),
            country="US",
        ),
    )
}


@dataclass(frozen=True)
class Assignment:
    """Which profile a ticket of this kind that came by this channel is held to."""

    kind: str
    channel: str
    profile: str

    def matches(self, kind: str, channel: str) -> bool:
        return self.kind in (ANY, kind) and self.channel in (ANY, channel)


@dataclass(frozen=True)
class DeadlineRules:
    assignments: tuple[Assignment, ...] = ()
    custom: tuple[Profile, ...] = ()
    calendar: str = DEFAULT_CALENDAR  # business days are counted on this calendar

    def profiles(self) -> dict[str, Profile]:
        return {**BUILTIN_PROFILES, **{profile.code: profile for profile in self.custom}}

    def profile_for(self, kind: str, channel: str) -> Profile | None:
        for assignment in self.assignments:
            if assignment.matches(kind, channel):
                return self.profiles().get(assignment.profile)
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "calendar": self.calendar,
            "assignments": [asdict(assignment) for assignment in self.assignments],
            "custom": [
                {
                    "code": profile.code,
                    "name": profile.name,
                    "source": profile.source,
                    "days": profile.deadlines[0].days,
                    "unit": profile.deadlines[0].unit,
                    # Written only when set, so documents saved before these existed read the same.
                    **({"country": profile.country} if profile.country else {}),
                    **({"roll_forward": True} if profile.roll_forward else {}),
                }
                for profile in self.custom
            ],
        }


# --- reading the documents back, with validation ------------------------------------------

KINDS = tuple(Kind)
PRIORITIES = tuple(Priority)
CHANNELS = tuple(Channel)
PROFILE_CODE_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,38}[a-z0-9]$")
DURATION_RE = re.compile(r"^\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m(?:in)?)?\s*$", re.IGNORECASE)


def parse_duration(text: str | int | None, field_name: str) -> int | None:
    """Business minutes from "8h", "1h 30m", "90m" or "90"; empty means no target."""
    if text is None or str(text).strip() == "":
        return None
    text = str(text).strip()
    if text.isdigit():
        minutes = int(text)
    else:
        match = DURATION_RE.match(text)
        if not match or not any(match.groups()):
            raise DomainError(_l("Write a duration such as 8h, 1h 30m or 90m."), field_name)
        minutes = int(match.group(1) or 0) * 60 + int(match.group(2) or 0)
    if not 1 <= minutes <= MAX_TARGET_MINUTES:
        raise DomainError(_l("A target must be between 1 minute and 365 days."), field_name)
    return minutes


def format_duration(minutes: int | None) -> str:
    if not minutes:
        return ""
    hours, rest = divmod(minutes, 60)
    return " ".join(part for part in (f"{hours}h" if hours else "", f"{rest}m" if rest else "") if part)


def _choice(value: Any, allowed: tuple[str, ...], field_name: str) -> str:
    value = ANY if value in (None, "") else str(value)
    if value != ANY and value not in allowed:
        raise DomainError(_l("%(value)s is not one of the choices.", value=value), field_name)
    return value


def _int_in(value: Any, low: int, high: int, field_name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise DomainError(
            _l("Enter a whole number from %(low)d to %(high)d.", low=low, high=high), field_name
        )
    return value


def _check_calendar(name: str, calendars: set[str] | None, field_name: str) -> str:
    """``calendars`` is None when reading back a stored version, checked when it was saved."""
    if calendars is not None and name not in calendars:
        raise DomainError(_l("There is no calendar named %(name)s.", name=name), field_name)
    return name


def rule_from_json(data: dict[str, Any], calendars: set[str] | None, field_name: str = "rules") -> Rule:
    actions = tuple(data.get("actions") or ())
    for action in actions:
        if action not in ACTIONS:
            raise DomainError(_l("Unknown breach action %(action)s.", action=action), field_name)
    reassign_to = data.get("reassign_to")
    if Action.REASSIGN in actions and reassign_to in (None, ""):
        raise DomainError(_l("Say whom to reassign a breached ticket to."), field_name)
    if reassign_to not in (None, MANAGERS_QUEUE) and (
        isinstance(reassign_to, bool) or not isinstance(reassign_to, int)
    ):
        raise DomainError(_l("Reassign to a user or to the managers' queue."), field_name)
    calendar = _check_calendar(data.get("calendar") or DEFAULT_CALENDAR, calendars, field_name)
    targets = {}
    for metric in ("first_response", "next_response", "resolution"):
        value = data.get(metric)
        targets[metric] = None if value is None else _int_in(value, 1, MAX_TARGET_MINUTES, field_name)
    if not any(targets.values()):
        raise DomainError(_l("A rule needs at least one target."), field_name)
    return Rule(
        kind=_choice(data.get("kind"), KINDS, field_name),
        priority=_choice(data.get("priority"), PRIORITIES, field_name),
        channel=_choice(data.get("channel"), CHANNELS, field_name),
        calendar=calendar,
        warn_percent=_int_in(data.get("warn_percent", 80), 1, 99, field_name),
        actions=actions,
        reassign_to=reassign_to if Action.REASSIGN in actions else None,
        **targets,
    )


def policy_from_json(data: dict[str, Any], calendars: set[str] | None = None) -> Policy:
    rules = data.get("rules")
    if not isinstance(rules, list) or not rules:
        raise DomainError(_l("A policy needs at least one rule."), "rules")
    if len(rules) > MAX_RULES:
        raise DomainError(_l("A policy has at most %(n)d rules.", n=MAX_RULES), "rules")
    policy = Policy(tuple(rule_from_json(rule, calendars) for rule in rules))
    for later, rule in enumerate(policy.rules, start=1):
        for earlier, before in enumerate(policy.rules[: later - 1], start=1):
            if all(mine in (ANY, theirs) for mine, theirs in zip(before.scope, rule.scope, strict=True)):
                raise DomainError(
                    _l(
                        "Rule %(later)d would never apply: rule %(earlier)d comes first and covers "
                        "every ticket it would. Give the narrower rule the lower order number.",
                        later=later,
                        earlier=earlier,
                    ),
                    "rules",
                )
    return policy


def custom_profile_from_json(data: dict[str, Any]) -> Profile:
    code = str(data.get("code") or "").strip().lower()
    if not PROFILE_CODE_RE.match(code) or code in BUILTIN_PROFILES:
        raise DomainError(
            _l("A profile code is 3–40 lowercase letters, digits and hyphens, and not a built-in one."),
            "custom",
        )
    name = str(data.get("name") or "").strip()
    if not 1 <= len(name) <= 100:
        raise DomainError(_l("A profile needs a name of at most 100 characters."), "custom")
    try:
        unit = Unit(data.get("unit"))
    except ValueError:
        raise DomainError(_l("Count a profile in calendar days or business days."), "custom") from None
    if unit == Unit.BUSINESS_MINUTES:
        raise DomainError(_l("Count a profile in calendar days or business days."), "custom")
    days = _int_in(data.get("days"), 1, MAX_DAYS, "custom")
    source = str(data.get("source") or "").strip()[:500]
    country = data.get("country") or None
    if country is not None and country not in COUNTRIES:
        raise DomainError(
            _l(
                "Count official working days of %(countries)s, or of your calendar.",
                countries=", ".join(COUNTRIES),
            ),
            "custom",
        )
    roll_forward = data.get("roll_forward", False)
    if not isinstance(roll_forward, bool):
        raise DomainError(
            _l("Say whether a deadline on a non-working day moves to the next working day."), "custom"
        )
    return Profile(
        code,
        name,
        source,
        (Deadline(Metric.REGULATORY_FINAL, days, unit),),
        builtin=False,
        country=country,
        roll_forward=roll_forward,
    )


def deadline_rules_from_json(data: dict[str, Any], calendars: set[str] | None = None) -> DeadlineRules:
    custom = tuple(custom_profile_from_json(item) for item in data.get("custom") or ())
    codes = [profile.code for profile in custom]
    if len(codes) != len(set(codes)):
        raise DomainError(_l("Two custom profiles have the same code."), "custom")
    known = {*BUILTIN_PROFILES, *codes}
    assignments = []
    for item in data.get("assignments") or ():
        profile = item.get("profile")
        if profile not in known:
            raise DomainError(_l("There is no profile %(code)s.", code=profile), "assignments")
        assignments.append(
            Assignment(
                kind=_choice(item.get("kind"), KINDS, "assignments"),
                channel=_choice(item.get("channel"), CHANNELS, "assignments"),
                profile=profile,
            )
        )
    calendar = _check_calendar(data.get("calendar") or DEFAULT_CALENDAR, calendars, "calendar")
    return DeadlineRules(tuple(assignments), custom, calendar)


# --- what a new tenant starts with -------------------------------------------------------


def default_calendar(timezone: str) -> CalendarSpec:
    """Monday to Friday, 09:00–18:00, in the tenant's time zone."""
    day = ((9 * 60, 18 * 60),)
    return CalendarSpec(timezone=timezone, weekly=(day,) * 5 + ((),) * 2)


DEFAULT_POLICY = Policy(
    (
        Rule(priority=Priority.URGENT, first_response=60, next_response=120, resolution=9 * 60),
        Rule(first_response=8 * 60, next_response=8 * 60, resolution=5 * 9 * 60),
    )
)
# No regulatory profile until the tenant picks one: which applies depends on its market.
DEFAULT_DEADLINES = DeadlineRules()
