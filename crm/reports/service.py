"""The reports as tables, in the page's language, and their check against the trail."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import url_for
from flask_babel import gettext as _

from crm.auth import service as auth
from crm.columns import utcnow
from crm.money import from_minor_units
from crm.refunds.labels import BODY_LABELS, ESCALATION_OUTCOME_LABELS, PENDING_LABEL
from crm.reports import agents, complaints, leads, refunds, sla, trail
from crm.reports.periods import Period
from crm.reports.tables import Table
from crm.sla.explain import format_minutes
from crm.sla.labels import METRIC_LABELS
from crm.sla.models import Metric
from crm.tickets.labels import REASON_LABELS
from tenants import current_tenant


def _duration(seconds: int | None) -> str:
    return "" if seconds is None else format_minutes(seconds // 60)


def _percent(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def sla_rows(period: Period, *, group_by: str = "metric", filters: sla.Filters | None = None, now=None):
    return sla.attainment_rows(period, filters, now=now or utcnow(), group_by=group_by)


def weekly_trend(period: Period, filters: sla.Filters) -> list[tuple[str, float | None, int]]:
    """Attainment of all metrics together, week by week: (week, percent, decided)."""
    rows = sla_rows(period, group_by="week", filters=filters)
    weeks: dict = {}
    for row in rows:
        on_time, decided = weeks.get(row.group, (0, 0))
        weeks[row.group] = (on_time + row.met_on_time, decided + row.decided)
    return [
        (week.isoformat(), _percent(100 * on_time / decided) if decided else None, decided)
        for week, (on_time, decided) in sorted(weeks.items())
    ]


def metric_label(metric: str) -> str:
    return str(METRIC_LABELS.get(metric, metric))


LINKED = ("due", "met_on_time", "met_late", "breached_open", "not_yet_due")


def _queue_links(row: sla.Row, period: Period | None, group_by: str) -> dict[str, str]:
    """Each count of a ticket metric opens the queue on the tickets behind it."""
    if period is None or row.metric == Metric.FIRST_CONTACT:
        return {}
    first, last = period.first_day, period.last_day
    if group_by == "week" and row.group:
        first, last = row.group, min(row.group + timedelta(days=6), period.last_day)
    base = {"view": "all", "clock": row.metric, "due_from": first.isoformat(), "due_to": last.isoformat()}
    if group_by == "assignee":
        base["assignee"] = row.group or "none"
    elif group_by == "reason" and row.group:
        base["reason"] = row.group
    return {
        key: url_for("tickets.queue", **base, **({"outcome": key} if key != "due" else {})) for key in LINKED
    }


def sla_table(rows: list[sla.Row], group_by: str, period: Period | None = None) -> Table:
    names = {user.id: user.display_name for user in auth.list_users()} if group_by == "assignee" else {}
    group_label = {"assignee": _("Assignee"), "reason": _("Reason"), "week": _("Week of")}.get(group_by)

    def group_text(group) -> str:
        if group_by == "assignee":
            return names.get(group, _("Unassigned")) if group else _("Unassigned")
        if group_by == "reason":
            return str(REASON_LABELS.get(group, group)) if group else _("No reason given")
        return group.isoformat() if group else ""

    columns = [("metric", _("Metric"))]
    if group_label:
        columns.append(("group", group_label))
    columns += [
        ("due", _("With a target")),
        ("met_on_time", _("Met on time")),
        ("met_late", _("Met late")),
        ("breached_open", _("Breached, not met")),
        ("not_yet_due", _("Not yet due")),
        ("attainment", _("Attainment %")),
        ("median_business", _("Median, business time")),
        ("p90_business", _("90th percentile, business time")),
        ("median_calendar", _("Median, calendar time")),
        ("p90_calendar", _("90th percentile, calendar time")),
    ]
    return Table(
        "sla",
        _("SLA attainment"),
        columns,
        [
            {
                "metric": metric_label(row.metric),
                "metric_code": row.metric,
                "group": group_text(row.group),
                "group_value": row.group,
                **row.totals(),
                "attainment": _percent(row.attainment),
                "median_business": _duration(row.median("business")),
                "p90_business": _duration(row.p90("business")),
                "median_calendar": _duration(row.median("calendar")),
                "p90_calendar": _duration(row.p90("calendar")),
                "_links": _queue_links(row, period, group_by),
            }
            for row in rows
        ],
    )


def complaints_return(period: Period, filters: sla.Filters | None = None) -> complaints.ComplaintsReturn:
    return complaints.count(
        complaints.facts_from_tables(period, filters),
        period,
        three_days_end=complaints.three_business_days(current_tenant().timezone),
        payouts=complaints.payouts_in(period, filters),
        escalations=complaints.escalations_in(period, filters),
    )


COUNT_KEYS = (
    "outstanding_at_start",
    "opened",
    "closed_within_3_business_days",
    "closed_within_8_weeks",
    "closed_after_8_weeks",
    "outstanding_at_end",
)


def _count_labels() -> dict[str, str]:
    return {
        "outstanding_at_start": _("Complaints outstanding at the start of the period"),
        "opened": _("Opened in the period"),
        "closed_within_3_business_days": _("Closed within 3 business days"),
        "closed_within_8_weeks": _("Closed after 3 business days, within 8 weeks"),
        "closed_after_8_weeks": _("Closed after 8 weeks"),
        "outstanding_at_end": _("Outstanding at the end of the period"),
        "approved_full": _("Upheld in full"),
        "approved_partial": _("Upheld in part"),
        "denied": _("Not upheld"),
        None: _("Closed without a refund decision"),
    }


def complaints_tables(result: complaints.ComplaintsReturn) -> list[Table]:
    labels = _count_labels()
    total = result.total
    summary = [
        {"measure": labels[key], "key": key, "count": getattr(total, key), "percent": None}
        for key in COUNT_KEYS
    ]
    summary += [
        {
            "measure": labels[outcome],
            "key": f"upheld_{outcome}",
            "count": total.outcomes[outcome],
            "percent": _percent(total.share(outcome)),
        }
        for outcome in complaints.OUTCOMES
    ]
    summary.append(
        {"measure": labels[None], "key": "no_decision", "count": total.outcomes[None], "percent": None}
    )
    reason_columns = [("reason", _("Reason")), *((key, labels[key]) for key in COUNT_KEYS)]
    reason_columns += [(f"upheld_{o}", labels[o]) for o in complaints.OUTCOMES]
    by_reason = [
        {
            "reason": str(REASON_LABELS.get(reason, reason)) if reason else _("No reason given"),
            **{key: getattr(counts, key) for key in COUNT_KEYS},
            **{f"upheld_{o}": counts.outcomes[o] for o in complaints.OUTCOMES},
        }
        for reason, counts in sorted(
            result.by_reason.items(), key=lambda item: (item[0] is None, item[0] or "")
        )
    ]
    china_labels = {
        "telecom_15_days": _("Telecom complaints answered within 15 days"),
        "12315_10_working_days": _("12315 cases answered within 10 working days"),
        "12321_15_working_days": _("12321 cases answered within 15 working days"),
    }
    china = [
        {
            "measure": china_labels[line],
            "on_time": on_time,
            "closed": closed,
            "percent": _percent(100 * on_time / closed) if closed else None,
        }
        for line, (on_time, closed) in result.china.items()
    ]
    china += [
        {
            "measure": _("Escalated to: %(body)s", body=BODY_LABELS.get(body, body)),
            "on_time": None,
            "closed": n,
            "percent": None,
        }
        for body, n in sorted(result.escalations.items())
    ]
    china += [
        {
            "measure": _(
                "Escalated to: %(body)s · %(outcome)s",
                body=BODY_LABELS.get(body, body),
                outcome=ESCALATION_OUTCOME_LABELS.get(outcome, PENDING_LABEL),
            ),
            "on_time": None,
            "closed": n,
            "percent": None,
        }
        for (body, outcome), n in sorted(result.escalation_outcomes.items())
    ]
    redress = [
        {"currency": currency, "amount": str(from_minor_units(amount, currency)), "amount_minor": amount}
        for currency, amount in sorted(result.redress_paid.items())
    ]
    return [
        Table(
            "return",
            _("Complaints return"),
            [("measure", _("Measure")), ("count", _("Count")), ("percent", _("%"))],
            summary,
        ),
        Table("by_reason", _("By reason"), reason_columns, by_reason),
        Table(
            "china",
            _("China"),
            [
                ("measure", _("Measure")),
                ("on_time", _("On time")),
                ("closed", _("Closed or received")),
                ("percent", _("%")),
            ],
            china,
        ),
        Table("redress", _("Redress paid"), [("currency", _("Currency")), ("amount", _("Amount"))], redress),
    ]


# --- verify ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    report: str
    measure: str
    from_tables: object
    from_trail: object

    @property
    def agrees(self) -> bool:
        return self.from_tables == self.from_trail


def verify(period: Period, now: datetime | None = None) -> list[Comparison]:
    """The complaints return and SLA attainment from the tables and from the trail alone,
    measure by measure."""
    now = now or utcnow()
    folded = trail.read_trail()
    three_days = complaints.three_business_days(current_tenant().timezone)
    from_trail = complaints.count(
        trail.complaint_facts(folded),
        period,
        three_days_end=three_days,
        payouts=folded.payouts,
        escalations=folded.escalations.values(),
    ).totals()
    from_tables = complaints_return(period).totals()
    comparisons = [
        Comparison("complaints", key, from_tables.get(key), from_trail.get(key))
        for key in sorted(from_tables.keys() | from_trail.keys())
    ]
    tables_sla = {row.metric: row.totals() for row in sla_rows(period, now=now)}
    trail_sla = {row.metric: row.totals() for row in sla.count(trail.clock_facts(folded), period, now=now)}
    for metric in sorted(tables_sla.keys() | trail_sla.keys()):
        for key in ("due", "met_on_time", "met_late", "breached_open", "not_yet_due"):
            comparisons.append(
                Comparison(
                    "sla",
                    f"{metric}.{key}",
                    tables_sla.get(metric, {}).get(key, 0),
                    trail_sla.get(metric, {}).get(key, 0),
                )
            )
    return comparisons


REPORTS = ("sla", "complaints", "refunds", "leads", "agents")


def report_tables(
    name: str,
    period: Period,
    *,
    filters: sla.Filters | None = None,
    group_by: str = "metric",
    now: datetime | None = None,
    linked: bool = False,
) -> list[Table]:
    """One of ``REPORTS`` as its tables: what the CLI prints and the API answers.
    ``linked``: the SLA counts carry links to the queue (built for a request)."""
    now = now or utcnow()
    if name == "sla":
        rows = sla_rows(period, group_by=group_by, filters=filters, now=now)
        return [sla_table(rows, group_by, period if linked else None)]
    if name == "complaints":
        return complaints_tables(complaints_return(period, filters))
    if name == "refunds":
        return refunds.refunds_tables(period, now, filters)
    if name == "leads":
        return leads.leads_tables(period, now, filters)
    if name == "agents":
        return [agents.agents_table(period, now, filters)]
    raise ValueError(name)
