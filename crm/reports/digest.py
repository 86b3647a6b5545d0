"""The managers' weekly report by email: on Monday from 09:00 in the tenant's time zone,
last week's SLA attainment, complaints opened and closed, breaches and overdue payouts,
with links, to each manager who asked for it. An hourly job (and ``flask reports
send-digests`` for cron) sends what is due; each person gets a week's report once."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import render_template
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import func, select

from crm import jobs
from crm.access import Role
from crm.audit.service import Actor, record
from crm.auth.models import User
from crm.columns import utcnow
from crm.extensions import db
from crm.notify.models import Automatic
from crm.notify.service import queue_email
from crm.reports import periods, service
from crm.sla.models import Clock, ClockState, Metric
from crm.tickets.links import external_url
from tenants import Tenant, current_tenant, tenant_context

DIGEST_JOB_PREFIX = "ledgerdesk-weekly-digest-"
SEND_FROM_HOUR = 9


@dataclass(frozen=True)
class Digest:
    period: periods.Period
    sla: list
    complaints: object
    breaches: int
    overdue_payouts: int


def last_week(now: datetime) -> tuple[periods.Period, datetime]:
    """Last week (Monday to Sunday, local) and when its report is due: this Monday 09:00."""
    timezone = current_tenant().timezone
    period = periods.preset("last_week", periods.local_today(timezone, now), timezone)
    due = period.end + timedelta(hours=SEND_FROM_HOUR)
    return period, due


def build(period: periods.Period, now: datetime) -> Digest:
    breaches = db.session.scalar(
        select(func.count()).where(Clock.breached_at >= period.start, Clock.breached_at < period.end)
    )
    overdue = db.session.scalar(
        select(func.count()).where(
            Clock.metric == Metric.PAYOUT, Clock.state == ClockState.RUNNING, Clock.due_at < now
        )
    )
    return Digest(
        period,
        service.sla_rows(period, now=now),
        service.complaints_return(period).total,
        breaches,
        overdue,
    )


def recipients() -> list[User]:
    return list(
        db.session.scalars(
            select(User)
            .where(
                User.weekly_digest.is_(True), User.active.is_(True), User.role.in_((Role.MANAGER, Role.ADMIN))
            )
            .order_by(User.id)
        )
    )


def send_due(now: datetime | None = None) -> int:
    """Send every tenant's weekly reports now due; how many were sent."""
    now = now or utcnow()
    sent = 0
    for tenant in db.session.scalars(select(Tenant).order_by(Tenant.id)).all():
        if not tenant.is_active:
            continue
        with tenant_context(tenant):
            sent += _send_for_tenant(now)
            db.session.commit()
    return sent


def _send_for_tenant(now: datetime) -> int:
    period, due = last_week(now)
    if now < due:
        return 0
    waiting = [user for user in recipients() if user.digest_week != period.first_day]
    if not waiting:
        return 0
    digest = build(period, now)
    for user in waiting:
        locale = user.locale or current_tenant().locale or "en"
        with force_locale(locale):
            subject = _("Weekly report, %(first)s to %(last)s", first=period.first_day, last=period.last_day)
            query = {"period": "custom", "first_day": period.first_day, "last_day": period.last_day}
            body = render_template(
                "emails/weekly_digest.txt",
                user=user,
                digest=digest,
                tenant=current_tenant(),
                sla_link=external_url("reports.index", **query),
                complaints_link=external_url("reports.complaints", **query),
                refunds_link=external_url("reports.refunds", **query),
                metric_label=service.metric_label,
            )
        queue_email(
            to=user.email,
            subject=subject,
            body=body,
            locale=locale,
            ticket_id=None,
            actor=Actor.system(),
            automatic=Automatic.GENERATED,
        )
        user.digest_week = period.first_day
        record(
            "report.digest_sent",
            "user",
            user.id,
            actor=Actor.system(),
            data={"week": period.first_day.isoformat()},
        )
    return len(waiting)


def set_weekly_digest(user: User, wanted: bool, *, actor: Actor) -> None:
    if wanted == user.weekly_digest:
        return
    record(
        "user.weekly_digest_changed",
        "user",
        user.id,
        actor=actor,
        data={"before": user.weekly_digest, "after": wanted},
    )
    user.weekly_digest = wanted


def digest_job() -> None:
    """The rq job: send what is due, then book the next hour."""
    try:
        send_due()
    finally:
        schedule_digests()


def schedule_digests(now: datetime | None = None) -> str | None:
    return jobs.book_next_minute(digest_job, DIGEST_JOB_PREFIX, now, every=60)
