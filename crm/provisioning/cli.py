"""``flask tenants …``: the operator's commands."""

import click
from flask.cli import AppGroup

from crm.cli_support import operator_actor, operator_command
from crm.extensions import db
from crm.provisioning import service

tenants_cli = AppGroup("tenants", help="Create, list and suspend tenants.")


@tenants_cli.command("create")
@click.argument("slug")
@click.option("--name", required=True, help="The provider's name, shown on its pages.")
@click.option("--timezone", default="Asia/Shanghai", show_default=True)
@click.option("--locale", default=None, help="Default language: en or zh_CN (default: the browser's).")
@click.option("--currency", default="CNY", show_default=True)
@operator_command
def create(slug: str, name: str, timezone: str, locale: str | None, currency: str) -> None:
    """Create tenant SLUG."""
    tenant = service.create_tenant(
        slug=slug, name=name, timezone=timezone, locale=locale, currency=currency, actor=operator_actor()
    )
    db.session.commit()
    click.echo(f"created tenant {tenant.slug} (id {tenant.id}): /t/{tenant.slug}/login")


@tenants_cli.command("list")
@operator_command
def list_() -> None:
    """List tenants."""
    rows = service.list_tenants()
    if not rows:
        click.echo("no tenants")
    for tenant in rows:
        columns = (
            tenant.slug,
            tenant.status,
            tenant.timezone,
            tenant.locale or "-",
            tenant.currency,
            tenant.name,
        )
        click.echo("\t".join(columns))


@tenants_cli.command("suspend")
@click.argument("slug")
@operator_command
def suspend(slug: str) -> None:
    """Suspend tenant SLUG: its pages answer 404."""
    tenant = service.suspend_tenant(slug, actor=operator_actor())
    db.session.commit()
    click.echo(f"tenant {tenant.slug} is suspended")
