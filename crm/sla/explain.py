"""Every clock explains itself: what is due, by when, and why that is the time.

The explanation is rebuilt from the clock row and the versions it pinned, the same
figures its audit events carry, so what the page says can be checked against the trail.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from babel.dates import format_skeleton
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from crm.columns import utcnow
from crm.refunds.labels import BODY_LABELS
from crm.sla import official, versions
from crm.sla.clocks import day_deadline_of
from crm.sla.labels import COUNTRY_LABELS, METRIC_LABELS, PAUSE_REASONS
from crm.sla.models import REGULATORY_METRICS, Clock, ClockState, Metric, Unit
from crm.sla.rules import Profile


@dataclass(frozen=True)
class ClockView:
    clock: Clock
    label: str
    # "on_track", "due_soon", "breached", "paused", "met", "met_late", "stopped"
    standing: str
    reasons: list[str]
    late_by: timedelta | None = None
    profile: Profile | None = None


def format_minutes(minutes: int) -> str:
    """45 h; 2 h 05 min; 45 min. Never days: a business day's length depends on the calendar."""
    hours, minutes = divmod(max(0, int(minutes)), 60)
    if hours and minutes:
        return _("%(hours)d h %(minutes)02d min", hours=hours, minutes=minutes)
    if hours:
        return _("%(hours)d h", hours=hours)
    return _("%(minutes)d min", minutes=minutes)


def format_late(late: timedelta) -> str:
    """How late, in wall time: "2 h 05 min", or "3 d 4 h" beyond a day."""
    minutes = int(late.total_seconds() // 60)
    if minutes < 24 * 60:
        return format_minutes(minutes)
    days, rest = divmod(minutes, 24 * 60)
    return _("%(days)d d %(hours)d h", days=days, hours=rest // 60)


def _date_ranges(days: list[tuple]) -> list[tuple]:
    """Consecutive dates with the same name, as (first, last, name)."""
    ranges: list[list] = []
    for day, name in days:
        if ranges and ranges[-1][2] == name and (day - ranges[-1][1]).days == 1:
            ranges[-1][1] = day
        else:
            ranges.append([day, day, name])
    return [tuple(item) for item in ranges]


def _short_date(day) -> str:
    # A skeleton, not a pattern: the pattern "MMMd" prints "Sep17" and "9月17".
    return format_skeleton("MMMd", day, locale=get_locale())


def _calendar_reasons(clock: Clock, spec, end: datetime) -> list[str]:
    """The closed and extra-open days between the start and the due time."""
    zone = ZoneInfo(spec.timezone)
    first, last = clock.started_at.astimezone(zone).date(), end.astimezone(zone).date()
    reasons = []
    for start, stop, name in _date_ranges(spec.holidays_between(first, last)):
        span = _short_date(start) if start == stop else f"{_short_date(start)}–{_short_date(stop)}"
        reasons.append(_("%(span)s: holiday %(name)s", span=span, name=name or "").rstrip())
    for day, _hours in spec.workdays:
        if first <= day <= last:
            reasons.append(_("%(day)s is a working day on this calendar", day=_short_date(day)))
    return reasons


def _target_reason(clock: Clock, calendar_label: str | None, profile: Profile | None) -> str:
    if clock.unit == Unit.BUSINESS_MINUTES:
        version = versions.by_id(clock.config_version_id)
        if version is None:
            return _(
                "%(target)s of business time on calendar “%(calendar)s”",
                target=format_minutes(clock.target),
                calendar=calendar_label,
            )
        return _(
            "%(target)s of business time on calendar “%(calendar)s” "
            "(rule %(rule)s of SLA policy v%(version)d)",
            target=format_minutes(clock.target),
            calendar=calendar_label,
            rule=clock.rule,
            version=version.version,
        )
    if clock.metric == Metric.PAYOUT:
        return _(
            "%(days)d calendar days after the refund was approved, to the end of that day (%(policy)s)",
            days=clock.target,
            policy=_("refund policy version %(n)s", n=clock.rule.removeprefix("policy-v")),
        )
    if clock.metric == Metric.ESCALATION:
        return _(
            "the deadline %(body)s set: %(days)d calendar days after it received the case",
            body=BODY_LABELS.get(clock.rule, clock.rule),
            days=clock.target,
        )
    name = profile.name if profile else clock.rule
    if profile is not None and profile.country:
        return _official_target_reason(clock, profile)
    if clock.unit == Unit.BUSINESS_DAYS:
        return _(
            "%(days)d business days on calendar “%(calendar)s” after the day of receipt, "
            "never paused (%(profile)s)",
            days=clock.target,
            calendar=calendar_label,
            profile=name,
        )
    return _(
        "%(days)d calendar days after the day of receipt, to the end of that day, never paused (%(profile)s)",
        days=clock.target,
        profile=name,
    )


def _official_target_reason(clock: Clock, profile: Profile) -> str:
    received = _short_date(clock.started_at.astimezone(ZoneInfo(profile.timezone)).date())
    if clock.unit == Unit.BUSINESS_DAYS:
        return _(
            "%(days)d working days after the day of receipt (%(received)s, %(timezone)s time), "
            "on the official calendar of %(country)s, not the desk's hours; never paused (%(profile)s)",
            days=clock.target,
            received=received,
            timezone=profile.timezone,
            country=COUNTRY_LABELS[profile.country],
            profile=profile.name,
        )
    return _(
        "%(days)d calendar days after the day of receipt (%(received)s, %(timezone)s time), "
        "to the end of that day, never paused (%(profile)s)",
        days=clock.target,
        received=received,
        timezone=profile.timezone,
        profile=profile.name,
    )


def _official_reasons(clock: Clock, spec, profile: Profile) -> list[str]:
    """How the official calendar shaped a regulatory deadline: the public holidays and
    make-up working days its working days skipped or counted, and a last day moved off
    a holiday."""
    deadline = day_deadline_of(clock, spec)
    country, chinese = profile.country, str(get_locale()).startswith("zh")
    reasons = []
    if clock.unit == Unit.BUSINESS_DAYS:
        days, day = [], deadline.received
        while day < deadline.last_day:
            day += timedelta(days=1)
            name = official.holiday_name(country, day, chinese=chinese)
            if name:
                days.append((day, name))
        for start, stop, name in _date_ranges(days):
            span = _short_date(start) if start == stop else f"{_short_date(start)}–{_short_date(stop)}"
            reasons.append(_("%(span)s: public holiday %(name)s", span=span, name=name))
        day = deadline.received
        while day < deadline.last_day:
            day += timedelta(days=1)
            if official.is_makeup_day(country, day):
                reasons.append(_("%(day)s is an official working day", day=_short_date(day)))
    if deadline.moved_from is not None:
        holiday = official.holiday_name(country, deadline.moved_from, chinese=chinese)
        if holiday:
            reasons.append(
                _(
                    "moved from %(from)s (%(holiday)s) to %(to)s, the next working day",
                    holiday=holiday,
                    to=_short_date(deadline.last_day),
                    **{"from": _short_date(deadline.moved_from)},
                )
            )
        else:
            reasons.append(
                _(
                    "moved from %(from)s, not a working day, to %(to)s, the next working day",
                    to=_short_date(deadline.last_day),
                    **{"from": _short_date(deadline.moved_from)},
                )
            )
    for year in deadline.missing_years:
        reasons.append(
            _(
                "%(package)s has no official calendar for %(year)d yet: its days were counted "
                "Monday to Friday, less the holidays on the rules' calendar",
                package=official.package_of(country),
                year=year,
            )
        )
    return reasons


def _pause_reasons(clock: Clock) -> list[str]:
    totals: dict[str, int] = {}
    for pause in clock.pauses:
        if pause.get("seconds") is not None:
            totals[pause["why"]] = totals.get(pause["why"], 0) + pause["seconds"]
    return [
        _(
            "paused %(duration)s while %(why)s",
            duration=format_minutes(seconds // 60),
            why=PAUSE_REASONS.get(why, why),
        )
        for why, seconds in totals.items()
        if seconds
    ]


def _standing(clock: Clock, now: datetime) -> tuple[str, timedelta | None]:
    if clock.state == ClockState.STOPPED:
        return "stopped", None
    if clock.state == ClockState.MET:
        late = clock.due_at is not None and clock.met_at > clock.due_at
        return ("met_late", clock.met_at - clock.due_at) if late else ("met", None)
    if clock.state == ClockState.PAUSED:
        # A clock paused after it was breached is still late: the wait does not excuse it.
        if clock.breached_at is not None:
            return "breached", now - clock.due_at
        return "paused", None
    if clock.due_at is not None and clock.due_at <= now:
        return "breached", now - clock.due_at
    if clock.warn_at is not None and clock.warn_at <= now:
        return "due_soon", None
    return "on_track", None


def explain(clock: Clock, now: datetime | None = None) -> ClockView:
    now = now or utcnow()
    calendar = versions.by_id(clock.calendar_version_id)
    spec = versions.calendar_spec(calendar) if calendar else None
    profile = versions.profile_of(clock) if clock.metric in REGULATORY_METRICS else None
    reasons = [_target_reason(clock, calendar.label if calendar else None, profile)]
    reasons += _pause_reasons(clock)
    end = clock.due_at or clock.met_at or clock.stopped_at or now
    if profile is not None and profile.country:
        reasons += _official_reasons(clock, spec, profile)
    elif spec is not None and clock.unit != Unit.CALENDAR_DAYS:
        reasons += _calendar_reasons(clock, spec, end)
    if clock.metric == Metric.REGULATORY_SUMMARY:
        reasons.append(_("a marker for reports: missing it raises no alarm"))
    standing, late_by = _standing(clock, now)
    return ClockView(clock, str(METRIC_LABELS[Metric(clock.metric)]), standing, reasons, late_by, profile)


def explain_all(clocks: list[Clock], now: datetime | None = None) -> list[ClockView]:
    """Unfinished clocks first, nearest due first; then the finished ones."""
    now = now or utcnow()
    views = [explain(clock, now) for clock in clocks]
    far = datetime.max.replace(tzinfo=now.tzinfo)
    return sorted(
        views,
        key=lambda view: (
            view.clock.state not in (ClockState.RUNNING, ClockState.PAUSED),
            view.clock.due_at or far,
        ),
    )


PUBLIC_LABELS = {
    Metric.FIRST_RESPONSE: _l("First answer by"),
    Metric.NEXT_RESPONSE: _l("Answer to your latest message by"),
    Metric.RESOLUTION: _l("Decision on your request by"),
    Metric.REGULATORY_RESPONSE: _l("Response required by regulation by"),
    Metric.REGULATORY_FINAL: _l("Final answer required by regulation by"),
}


@dataclass(frozen=True)
class PublicDeadline:
    label: str
    due_at: datetime | None  # None while paused for the customer's answer


def public_deadlines(clocks: list[Clock]) -> list[PublicDeadline]:
    """The deadlines a customer sees: those still running, nearest first."""
    shown = [
        clock
        for clock in clocks
        if clock.metric in PUBLIC_LABELS and clock.state in (ClockState.RUNNING, ClockState.PAUSED)
    ]
    far = datetime.max.replace(tzinfo=UTC)
    shown.sort(key=lambda clock: clock.due_at or far)
    return [PublicDeadline(str(PUBLIC_LABELS[Metric(clock.metric)]), clock.due_at) for clock in shown]
