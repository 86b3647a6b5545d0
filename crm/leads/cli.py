"""``flask leads …``: importing leads from CSV, and purging expired consent proofs."""

import sys
from pathlib import Path

import click
from flask.cli import AppGroup

from crm.cli_support import operator_actor, operator_command, tenant_option
from crm.extensions import db
from crm.leads import imports, pipeline
from tenants import Tenant, tenant_context

leads_cli = AppGroup("leads", help="Import leads; purge consent proofs past their retention.")


def run_import(tenant: Tenant, path: Path, columns: tuple[str, ...], importer) -> None:
    """Read, check and import a CSV with a progress bar; print the summary and each
    rejected row. Exit 0 when it finishes, whatever rows were rejected."""
    try:
        rows = list(imports.read_csv(path.read_bytes(), columns))
    except imports.BadFile as error:
        raise click.ClickException(str(error)) from None
    with (
        tenant_context(tenant),
        click.progressbar(length=len(rows), label="importing", file=sys.stderr) as bar,
    ):
        done = [0]

        def advance(count: int) -> None:
            bar.update(count - done[0])
            done[0] = count

        result = importer(rows, actor=operator_actor(), progress=advance)
    for number, reason in result.errors:
        click.echo(f"row {number}: {reason}")
    if result.rejected > len(result.errors):
        click.echo(f"… and {result.rejected - len(result.errors)} more rejected rows")
    click.echo(result.summary)


@leads_cli.command("import")
@tenant_option
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@operator_command
def import_leads(tenant: Tenant, path: Path) -> None:
    """Import FILE.csv with the columns name,phone,email,company,source,consent."""
    run_import(tenant, path, imports.LEAD_COLUMNS, imports.import_leads)


@leads_cli.command("purge-consents")
@tenant_option
@operator_command
def purge_consents(tenant: Tenant) -> None:
    """Delete the consent proofs of erased leads whose retention has ended."""
    with tenant_context(tenant):
        count = pipeline.purge_expired_proofs()
        db.session.commit()
    click.echo(f"purged {count} consent proofs")
