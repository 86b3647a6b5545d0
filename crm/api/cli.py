"""``flask api-keys …``: keys for scripts, the same as the admin page makes."""

from datetime import UTC, datetime, time

import click
from flask.cli import AppGroup

from crm.api import keys
from crm.cli_support import operator_actor, operator_command, tenant_option
from crm.extensions import db
from tenants import Tenant, tenant_context

api_keys_cli = AppGroup("api-keys", help="Create, list and revoke API keys.")


@api_keys_cli.command("create")
@tenant_option
@click.option("--name", required=True)
@click.option("--scopes", required=True, help="Comma-separated, e.g. tickets:read,tickets:write")
@click.option(
    "--expires", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Last day the key works (UTC)."
)
@operator_command
def create(tenant: Tenant, name: str, scopes: str, expires) -> None:
    """Create a key; the key itself is printed alone on the last line, once."""
    expires_at = datetime.combine(expires.date(), time(23, 59, 59), UTC) if expires else None
    with tenant_context(tenant):
        made = keys.create_key(name=name, scopes=scopes, expires_at=expires_at, actor=operator_actor())
        db.session.commit()
        click.echo(f"key {made.key.id} {made.key.name}: {', '.join(made.key.scopes)}")
    click.echo(made.secret)


@api_keys_cli.command("list")
@tenant_option
@operator_command
def list_keys(tenant: Tenant) -> None:
    with tenant_context(tenant):
        for key in keys.list_keys():
            state = (
                "revoked"
                if key.revoked_at
                else "expires " + key.expires_at.isoformat()
                if key.expires_at
                else "active"
            )
            used = key.last_used_at.isoformat() if key.last_used_at else "never used"
            click.echo(f"{key.id}\t{key.prefix}…\t{key.name}\t{','.join(key.scopes)}\t{state}\t{used}")


@api_keys_cli.command("revoke")
@tenant_option
@click.argument("key_id", type=click.IntRange(1, 2**63 - 1))
@operator_command
def revoke(tenant: Tenant, key_id: int) -> None:
    with tenant_context(tenant):
        key = keys.key_by_id(key_id)
        if key is None:
            raise click.BadParameter(f"{tenant.slug} has no key {key_id}", param_hint="KEY_ID")
        keys.revoke_key(key, actor=operator_actor())
        db.session.commit()
    click.echo(f"revoked key {key_id}")
