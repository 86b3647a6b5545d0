"""``flask export …``: case files for inspectors."""

import sys
from pathlib import Path

import click
from flask.cli import AppGroup

from crm.cli_support import operator_actor, operator_command, tenant_option
from crm.exports.case_file import write_case_file
from crm.exports.tenant_export import ticket_count, write_tenant_export
from crm.extensions import db
from crm.tickets import service as tickets
from tenants import Tenant, tenant_context

export_cli = AppGroup("export", help="Write case files and tenant exports an inspector verifies offline.")


@export_cli.command("case")
@tenant_option
@click.argument("number", type=click.IntRange(1, 2**63 - 1))
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False, path_type=Path))
@operator_command
def case(tenant: Tenant, number: int, output: Path) -> None:
    """Write the case file of ticket NUMBER (e.g. 1042) to a ZIP."""
    with tenant_context(tenant):
        ticket = tickets.ticket_by_number(number)
        if ticket is None:
            raise click.BadParameter(f"{tenant.slug} has no ticket {number}", param_hint="NUMBER")
        written = write_case_file(ticket, output, actor=operator_actor())
        db.session.commit()
        # Inside the tenant's context: the commit expired the checkpoint, and its row
        # reads back only as the tenant's (row-level security).
        click.echo(
            f"case file: {written.path}, {written.files} files, {written.events} events, "
            f"checkpoint tree size {written.checkpoint.tree_size}, key {written.checkpoint.key_id}"
        )


@export_cli.command("tenant")
@tenant_option
@click.option("-o", "--output", "output", required=True, type=click.Path(file_okay=False, path_type=Path))
@operator_command
def tenant_export(tenant: Tenant, output: Path) -> None:
    """Write the whole tenant to a new folder: the chain, every case, every policy and
    configuration version, all checkpoints, and a signed manifest."""
    if output.exists():
        raise click.BadParameter(f"{output} already exists: give a new folder", param_hint="-o")
    with tenant_context(tenant):
        with click.progressbar(length=ticket_count(), label="cases", file=sys.stderr) as bar:
            written = write_tenant_export(output, actor=operator_actor(), progress=bar.update)
        db.session.commit()
        click.echo(
            f"tenant export: {written.path}, {written.events} events, {written.cases} cases,"
            f" {written.files} files, checkpoint tree size {written.checkpoint.tree_size},"
            f" key {written.checkpoint.key_id}"
        )
