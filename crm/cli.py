"""Registers every command group on the app's ``flask`` CLI."""

import click
from flask import Flask
from flask.cli import with_appcontext
from flask_migrate.cli import db as migrate_db

from crm.api.cli import api_keys_cli
from crm.audit.cli import audit_cli
from crm.auth.cli import users_cli
from crm.cli_support import operator_command
from crm.demo.cli import demo_cli
from crm.dnc.cli import dnc_cli
from crm.exports.cli import export_cli
from crm.extensions import db
from crm.inbound.cli import mail_cli
from crm.jobs import jobs_cli
from crm.leads.cli import leads_cli
from crm.notify.cli import outbox_cli
from crm.policies.cli import policies_cli
from crm.provisioning.cli import tenants_cli
from crm.reports.cli import reports_cli
from crm.sla.cli import calendar_cli, sla_cli
from crm.webhooks.cli import webhooks_cli
from tenants import roles


def init_app(app: Flask) -> None:
    groups = (
        tenants_cli,
        users_cli,
        audit_cli,
        jobs_cli,
        outbox_cli,
        mail_cli,
        demo_cli,
        calendar_cli,
        sla_cli,
        policies_cli,
        export_cli,
        reports_cli,
        api_keys_cli,
        webhooks_cli,
        leads_cli,
        dnc_cli,
    )
    for group in groups:
        app.cli.add_command(group)
    if "grant-app-role" not in migrate_db.commands:
        migrate_db.add_command(grant_app_role_command)


@click.command("grant-app-role")
@click.argument("role")
@with_appcontext
@operator_command
def grant_app_role_command(role: str) -> None:
    """Make ROLE the application's PostgreSQL role (created if missing): no superuser, no
    BYPASSRLS, add-and-read only on the audit tables. Run it as the owner after migrating."""
    if db.engine.dialect.name != "postgresql":
        raise click.ClickException("roles and row-level security are PostgreSQL's; SQLite has neither")
    try:
        with db.engine.begin() as connection:
            statements = roles.grant_app_role(connection, role)
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    for statement in statements:
        click.echo(statement + ";")
    click.echo(f"{role} is the application's role: connect the web tier and workers as it.")
