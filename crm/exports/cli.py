"""``flask export …``: case files for inspectors."""

from pathlib import Path

import click
from flask.cli import AppGroup

from crm.cli_support import operator_actor, operator_command, tenant_option
from crm.exports.case_file import write_case_file
from crm.extensions import db
from crm.tickets import service as tickets
from tenants import Tenant, tenant_context

export_cli = AppGroup("export", help="Write case files an inspector verifies offline.")


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
    click.echo(
        f"case file: {written.path}, {written.files} files, {written.events} events, "
        f"checkpoint tree size {written.checkpoint.tree_size}, key {written.checkpoint.key_id}"
    )
