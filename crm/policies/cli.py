"""``flask policies …``: refund policy versions kept in version control."""

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import click
from flask.cli import AppGroup

from crm.cli_support import operator_actor, operator_command, tenant_option
from crm.extensions import db
from crm.policies import service
from tenants import Tenant, tenant_context

policies_cli = AppGroup("policies", help="Refund policy versions.")


@policies_cli.command("import")
@tenant_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@operator_command
def import_file(tenant: Tenant, file: Path) -> None:
    """Create a draft from FILE.json ({"texts": …, "terms": …}); prints its version number."""
    texts, terms = service.read_file(file.read_bytes())
    with tenant_context(tenant):
        version = service.create_draft(texts, terms, actor=operator_actor())
        number = version.number
        db.session.commit()
    click.echo(number)


@policies_cli.command("publish")
@tenant_option
@click.argument("number", type=click.IntRange(1))
@click.option("--effective-from", help="ISO-8601 with offset, e.g. 2026-12-01T00:00:00+08:00 (default: now).")
@operator_command
def publish(tenant: Tenant, number: int, effective_from: str | None) -> None:
    """Publish draft NUMBER: it can no longer change, and takes effect then."""
    when = None
    if effective_from:
        try:
            when = datetime.fromisoformat(effective_from)
        except ValueError:
            raise click.BadParameter(
                "use ISO-8601, e.g. 2026-12-01T00:00:00+08:00", param_hint="--effective-from"
            ) from None
        if when.tzinfo is None:
            raise click.BadParameter("give the offset, e.g. +08:00", param_hint="--effective-from")
    with tenant_context(tenant):
        version = service.publish(service.require(number), effective_from=when, actor=operator_actor())
        effective = version.effective_from.astimezone(ZoneInfo(tenant.timezone)).isoformat(timespec="seconds")
        line = f"v{version.number} published, sha256 {version.sha256}, effective {effective}"
        db.session.commit()
    click.echo(line)


@policies_cli.command("list")
@tenant_option
@operator_command
def list_versions(tenant: Tenant) -> None:
    """Every version: number, status, effective time, hash."""
    with tenant_context(tenant):
        current = service.in_force()
        for version in service.versions():
            standing = "in force" if current is not None and version.id == current.id else version.status
            effective = (
                version.effective_from.astimezone(ZoneInfo(tenant.timezone)).isoformat(timespec="seconds")
                if version.effective_from
                else "-"
            )
            click.echo(f"v{version.number}\t{standing}\t{effective}\t{version.sha256 or '-'}")
