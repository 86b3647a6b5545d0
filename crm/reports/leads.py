"""The leads report: new leads by source and by week, first-contact attainment and the
median time to it, the funnel by stage with conversion, lost reasons, and do-not-contact
additions by source."""

import statistics
from collections import Counter
from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import select

from crm.dnc.models import DoNotContact
from crm.extensions import db
from crm.leads.forms import STAGE_LABELS
from crm.leads.models import Lead, Stage
from crm.reports import sla
from crm.reports.periods import Period
from crm.reports.tables import Table
from crm.sla.explain import format_minutes
from crm.sla.models import Metric

FUNNEL = (Stage.NEW, Stage.CONTACTED, Stage.QUALIFIED, Stage.TRIAL, Stage.WON)


def leads_tables(period: Period, now: datetime, filters: sla.Filters | None = None) -> list[Table]:
    """The report's tables. Of the filters only the assignee (the lead's owner) applies:
    kind, reason, channel and priority are a ticket's."""
    owner = filters.assignee if filters else None
    leads = db.session.execute(
        select(
            Lead.utm_source,
            Lead.source,
            Lead.stage,
            Lead.lost_reason,
            Lead.created_at,
            Lead.first_contacted_at,
        ).where(
            Lead.created_at >= period.start,
            Lead.created_at < period.end,
            *([Lead.assignee_id == owner] if owner else []),
        )
    ).all()
    by_source = Counter(row.utm_source or row.source for row in leads)
    by_week = Counter(period.week_of(row.created_at) for row in leads)
    stages = Counter(row.stage for row in leads)
    lost = Counter(row.lost_reason for row in leads if row.stage == Stage.LOST)
    waits = [
        (row.first_contacted_at - row.created_at).total_seconds() for row in leads if row.first_contacted_at
    ]
    total = len(leads)
    # Reached a stage: there now, or past it. Every lead was received; one contacted and
    # later lost or unreachable still counts as contacted.
    reached = {stage: sum(stages[s] for s in FUNNEL[position:]) for position, stage in enumerate(FUNNEL)}
    reached[Stage.NEW] = total
    reached[Stage.CONTACTED] = sum(
        1 for row in leads if row.first_contacted_at or row.stage in (Stage.QUALIFIED, Stage.TRIAL, Stage.WON)
    )
    rows = sla.attainment_rows(period, now=now, group_by="assignee" if owner else "metric")
    [first_contact] = [row for row in rows if row.metric == Metric.FIRST_CONTACT and row.group == owner] or [
        sla.Row(Metric.FIRST_CONTACT)
    ]
    dnc = Counter(
        db.session.scalars(
            select(DoNotContact.source).where(
                DoNotContact.created_at >= period.start, DoNotContact.created_at < period.end
            )
        )
    )
    return [
        Table(
            "lead_sources",
            _("New leads by source"),
            [("source", _("Source")), ("leads", _("Leads"))],
            [{"source": source, "leads": n} for source, n in by_source.most_common()],
        ),
        Table(
            "lead_weeks",
            _("New leads by week"),
            [("week", _("Week of")), ("leads", _("Leads"))],
            [{"week": week.isoformat(), "leads": by_week.get(week, 0)} for week in period.weeks()],
        ),
        Table(
            "first_contact",
            _("First contact against the promise"),
            [("measure", _("Measure")), ("value", _("Value"))],
            [
                {"measure": _("Promises due in the period"), "value": first_contact.due},
                {"measure": _("Kept"), "value": first_contact.met_on_time},
                {"measure": _("Kept late"), "value": first_contact.met_late},
                {"measure": _("Missed, not yet contacted"), "value": first_contact.breached_open},
                {
                    "measure": _("Attainment %"),
                    "value": None if first_contact.attainment is None else round(first_contact.attainment, 1),
                },
                {
                    "measure": _("Median time to first contact"),
                    "value": format_minutes(int(statistics.median(waits)) // 60) if waits else None,
                },
            ],
        ),
        Table(
            "funnel",
            _("Funnel of the leads received in the period"),
            [("stage", _("Stage")), ("leads", _("Reached")), ("percent", _("Of all received"))],
            [
                {
                    "stage": str(STAGE_LABELS[stage]),
                    "leads": reached[stage],
                    "percent": round(100 * reached[stage] / total, 1) if total else None,
                }
                for stage in FUNNEL
            ]
            + [
                {
                    "stage": str(STAGE_LABELS[stage]),
                    "leads": stages[stage],
                    "percent": round(100 * stages[stage] / total, 1) if total else None,
                }
                for stage in (Stage.LOST, Stage.UNREACHABLE)
            ],
        ),
        Table(
            "lost_reasons",
            _("Lost reasons"),
            [("reason", _("Reason")), ("leads", _("Leads"))],
            [{"reason": reason, "leads": n} for reason, n in lost.most_common()],
        ),
        Table(
            "dnc_additions",
            _("Do-not-contact additions by source"),
            [("source", _("Source")), ("entries", _("Entries"))],
            [{"source": source, "entries": n} for source, n in dnc.most_common()],
        ),
    ]
