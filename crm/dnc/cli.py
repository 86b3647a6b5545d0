"""``flask dnc import``: loading a do-not-contact list from CSV."""

from pathlib import Path

import click
from flask.cli import AppGroup

from crm.cli_support import operator_command, tenant_option
from crm.leads import imports
from crm.leads.cli import run_import
from tenants import Tenant

dnc_cli = AppGroup("dnc", help="Load do-not-contact entries.")


@dnc_cli.command("import")
@tenant_option
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@operator_command
def import_entries(tenant: Tenant, path: Path) -> None:
    """Import FILE.csv with the columns phone,email,reason."""
    run_import(tenant, path, imports.DNC_COLUMNS, imports.import_dnc)
