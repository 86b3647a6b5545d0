"""``flask users …``: staff accounts from the command line."""

import click
from flask.cli import AppGroup

from crm.access import Role
from crm.auth import service
from crm.cli_support import operator_actor, operator_command, tenant_option
from crm.extensions import db
from tenants import Tenant, tenant_context

users_cli = AppGroup("users", help="Manage staff users.")


@users_cli.command("create")
@tenant_option
@click.option("--email", required=True)
@click.option("--role", required=True, type=click.Choice([role.value for role in Role]))
@click.option("--name", "display_name", default="", help="Display name (default: the email's local part).")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@operator_command
def create(tenant: Tenant, email: str, role: str, display_name: str, password: str) -> None:
    """Create a staff user in a tenant."""
    with tenant_context(tenant):
        user = service.create_user(
            email=email, role=role, password=password, display_name=display_name, actor=operator_actor()
        )
        db.session.commit()
        click.echo(f"created {user.role} {user.email} in {tenant.slug}")
