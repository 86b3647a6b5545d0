"""``flask reports …``: the reports as CSV or JSON for scripts, and their check against
the audit trail."""

import json
import sys

import click
from flask.cli import AppGroup

from crm.cli_support import operator_command, tenant_option
from crm.reports import digest, periods, service, sla
from crm.reports.tables import Table, as_csv, as_document
from tenants import Tenant, tenant_context

reports_cli = AppGroup(
    "reports", help="Manager reports as CSV or JSON, and their check against the audit trail."
)


def period_options(command):
    command = click.option(
        "--to", "last_day", required=True, type=click.DateTime(["%Y-%m-%d"]), help="Last day, included."
    )(command)
    return click.option(
        "--from", "first_day", required=True, type=click.DateTime(["%Y-%m-%d"]), help="First day."
    )(command)


def format_option(command):
    return click.option(
        "--format", "output_format", type=click.Choice(["csv", "json"]), default="csv", show_default=True
    )(command)


def _period(tenant: Tenant, first_day, last_day) -> periods.Period:
    return periods.between(first_day.date(), last_day.date(), tenant.timezone)


def _print(tables: list[Table], output_format: str, period: periods.Period) -> None:
    if output_format == "json":
        click.echo(json.dumps(as_document(tables, period), ensure_ascii=False, indent=2, default=str))
    else:
        sys.stdout.buffer.write(as_csv(tables))
        sys.stdout.flush()


@reports_cli.command("sla")
@tenant_option
@period_options
@format_option
@click.option("--by", "group_by", type=click.Choice(sla.GROUPS), default="metric", show_default=True)
@operator_command
def sla_report(tenant: Tenant, first_day, last_day, output_format: str, group_by: str) -> None:
    """SLA attainment of the clocks that became due in the period."""
    with tenant_context(tenant):
        period = _period(tenant, first_day, last_day)
        _print(service.report_tables("sla", period, group_by=group_by), output_format, period)


@reports_cli.command("complaints")
@tenant_option
@period_options
@format_option
@operator_command
def complaints_report(tenant: Tenant, first_day, last_day, output_format: str) -> None:
    """The complaints return (FCA DISP 1 Annex 1 shape, with the China block)."""
    with tenant_context(tenant):
        period = _period(tenant, first_day, last_day)
        _print(service.report_tables("complaints", period), output_format, period)


def _tables_command(name: str, help_text: str) -> None:
    @reports_cli.command(name, help=help_text)
    @tenant_option
    @period_options
    @format_option
    @operator_command
    def command(tenant: Tenant, first_day, last_day, output_format: str) -> None:
        with tenant_context(tenant):
            period = _period(tenant, first_day, last_day)
            _print(service.report_tables(name, period), output_format, period)


_tables_command("refunds", "Refunds requested, decided and paid, and overdue payouts.")
_tables_command("leads", "New leads, first contact, the funnel, lost reasons.")
_tables_command("agents", "Per agent: open, handled, first response, replies, breaches.")


@reports_cli.command("verify")
@tenant_option
@period_options
@operator_command
def verify(tenant: Tenant, first_day, last_day) -> None:
    """Recompute the complaints return and SLA attainment from the audit trail alone and
    compare them with the reports: both side by side; exit 1 on any difference."""
    with tenant_context(tenant):
        comparisons = service.verify(_period(tenant, first_day, last_day))
    width = max((len(f"{c.report} {c.measure}") for c in comparisons), default=20)
    click.echo(f"{'measure'.ljust(width)}  {'tables':>12}  {'trail':>12}")
    for comparison in comparisons:
        name = f"{comparison.report} {comparison.measure}".ljust(width)
        mark = "" if comparison.agrees else "  DIFFERS"
        click.echo(f"{name}  {comparison.from_tables!s:>12}  {comparison.from_trail!s:>12}{mark}")
    differing = [c for c in comparisons if not c.agrees]
    if differing:
        click.echo(f"{len(differing)} of {len(comparisons)} measures differ", err=True)
        sys.exit(1)
    click.echo(f"all {len(comparisons)} measures agree")


@reports_cli.command("send-digests")
@operator_command
def send_digests() -> None:
    """Send the weekly reports now due (Monday from 09:00, tenant time), each once; for
    cron, hourly, where no rq worker runs."""
    click.echo(f"sent {digest.send_due()} weekly reports")
