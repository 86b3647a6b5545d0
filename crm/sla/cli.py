"""``flask calendar …`` and ``flask sla …``: business calendars, due times and the sweep."""

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import click
from flask.cli import AppGroup
from sqlalchemy import select

from crm.cli_support import operator_actor, operator_command, tenant_option
from crm.extensions import db
from crm.sla import calendars, clocks, sweep, versions
from crm.sla.businesstime import format_intervals, format_weekly, timeline_for
from crm.sla.models import ConfigVersion
from crm.sla.rules import DEFAULT_CALENDAR
from tenants import Tenant, tenant_context

calendar_cli = AppGroup("calendar", help="Business calendars: hours, holidays, working days.")
sla_cli = AppGroup("sla", help="SLA clocks: due times and the breach sweep.")


class Day(click.ParamType):
    name = "YYYY-MM-DD"

    def convert(self, value, param, ctx) -> date:
        try:
            return value if isinstance(value, date) else date.fromisoformat(value)
        except ValueError:
            self.fail(f"{value!r} is not a date such as 2026-10-01", param, ctx)


DAY = Day()
calendar_option = click.option(
    "--calendar", "name", default=DEFAULT_CALENDAR, show_default=True, help="The calendar's name."
)


def _saved(version: ConfigVersion | None) -> None:
    db.session.commit()
    click.echo(f"{version.label} saved" if version else "no change: the calendar already says so")


@calendar_cli.command("show")
@tenant_option
@calendar_option
@operator_command
def show(tenant: Tenant, name: str) -> None:
    """Print the calendar's newest version: time zone, hours, holidays and working days."""
    with tenant_context(tenant):
        version = versions.calendar(name)
        spec = versions.calendar_spec(version)
        # Read before the commit expires it: the row is the tenant's, seen only in its context.
        heading = f"{version.label} ({spec.timezone}), saved {version.created_at:%Y-%m-%d %H:%M} UTC"
        db.session.commit()  # a default calendar made on first look is kept
    click.echo(heading)
    click.echo(f"hours: {format_weekly(spec.weekly)}")
    for day, label in spec.holidays:
        click.echo(f"holiday {day.isoformat()} {day:%a} {label}".rstrip())
    for day, hours in spec.workdays:
        click.echo(f"working day {day.isoformat()} {day:%a} {format_intervals(hours)}")


@calendar_cli.command("set-hours")
@tenant_option
@calendar_option
@click.argument("hours")
@operator_command
def set_hours(tenant: Tenant, name: str, hours: str) -> None:
    """Set weekly hours, e.g. "mon-fri 09:00-12:00,13:30-18:00", "sat 10:00-16:00", "24x7"."""
    with tenant_context(tenant):
        _saved(calendars.set_hours(name, hours, actor=operator_actor()))


@calendar_cli.command("add-holiday")
@tenant_option
@calendar_option
@click.argument("day", type=DAY)
@click.option("--name", "label", default="", help="What the holiday is called.")
@operator_command
def add_holiday(tenant: Tenant, name: str, day: date, label: str) -> None:
    """Close the desk on DAY (YYYY-MM-DD)."""
    with tenant_context(tenant):
        _saved(calendars.add_dates(name, holidays={day: label.strip()[:100]}, actor=operator_actor()))


@calendar_cli.command("add-workday")
@tenant_option
@calendar_option
@click.argument("day", type=DAY)
@click.option("--hours", default=None, help="e.g. 09:00-18:00 (default: the calendar's Monday hours).")
@operator_command
def add_workday(tenant: Tenant, name: str, day: date, hours: str | None) -> None:
    """Make DAY (YYYY-MM-DD) a working day, such as a weekend made up for a holiday."""
    with tenant_context(tenant):
        _saved(calendars.add_dates(name, workdays=[day], hours=hours, actor=operator_actor()))


@calendar_cli.command("import-cn")
@tenant_option
@calendar_option
@click.option("--year", type=click.IntRange(2004, 2100), default=date.today().year, show_default=True)
@operator_command
def import_cn(tenant: Tenant, name: str, year: int) -> None:
    """Mainland China's public holidays and make-up working days for YEAR."""
    with tenant_context(tenant):
        _saved(calendars.import_china(name, year, actor=operator_actor()))


@calendar_cli.command("import-holidays")
@tenant_option
@calendar_option
@click.option("--country", required=True, help="ISO 3166 code: GB, US, DE... (CN: as import-cn).")
@click.option(
    "--subdivision", default=None, help="A region, e.g. SCT or NIR (GB: England and Wales if not given)."
)
@click.option("--year", type=click.IntRange(1800, 2200), default=date.today().year, show_default=True)
@operator_command
def import_holidays(tenant: Tenant, name: str, country: str, subdivision: str | None, year: int) -> None:
    """A country's public holidays for YEAR, from the holidays package."""
    with tenant_context(tenant):
        _saved(
            calendars.import_public_holidays(
                name, country, year, subdivision=subdivision, actor=operator_actor()
            )
        )


@calendar_cli.command("import-ics")
@tenant_option
@calendar_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@operator_command
def import_ics(tenant: Tenant, name: str, file: Path) -> None:
    """Holidays from an iCalendar file's all-day events."""
    with tenant_context(tenant):
        _saved(calendars.import_ics(name, file.read_bytes(), actor=operator_actor()))


@sla_cli.command("due")
@tenant_option
@calendar_option
@click.option("--start", required=True, help="An ISO-8601 instant with its offset.")
@click.option("--minutes", required=True, type=click.IntRange(0, 10_000_000), help="Business minutes.")
@operator_command
def due(tenant: Tenant, name: str, start: str, minutes: int) -> None:
    """Print when MINUTES business minutes after START end, in the tenant's time zone."""
    try:
        instant = datetime.fromisoformat(start)
    except ValueError:
        message = "use ISO-8601, e.g. 2026-09-30T17:00:00+08:00"
        raise click.BadParameter(message, param_hint="--start") from None
    if instant.tzinfo is None:
        raise click.BadParameter("give the offset, e.g. +08:00", param_hint="--start")
    with tenant_context(tenant):
        spec = versions.calendar_spec(versions.calendar(name))
        db.session.commit()
    result = timeline_for(spec).add(instant, minutes)
    click.echo(result.astimezone(ZoneInfo(tenant.timezone)).isoformat())


@sla_cli.command("sweep")
@operator_command
def run_sweep() -> None:
    """Record the warnings and breaches due now, for every tenant (cron it every minute
    where no rq worker runs with --with-scheduler)."""
    result = sweep.sweep()
    click.echo(f"warned {result.warned}, breached {result.breached}, actions {result.actions}")


@sla_cli.command("schedule")
@operator_command
def schedule() -> None:
    """Book the every-minute sweep on the rq scheduler (workers do this when they start)."""
    job_id = sweep.schedule_next()
    if job_id is None:
        raise click.ClickException("REDIS_URL is not set: cron 'flask --app wsgi sla sweep' instead.")
    click.echo(f"booked {job_id}")


@sla_cli.command("backfill-met-times")
@operator_command
def backfill_met_times() -> None:
    """Fill in the business time to meet of clocks met before it was kept (revision
    0027), for every tenant; the SLA report reads it instead of recomputing it."""
    total = 0
    for tenant in db.session.scalars(select(Tenant).order_by(Tenant.id)).all():
        with tenant_context(tenant):
            filled = clocks.backfill_met_business_seconds()
            db.session.commit()
        total += filled
        if filled:
            click.echo(f"{tenant.slug}: {filled} clocks")
    click.echo(f"filled {total} clocks")
