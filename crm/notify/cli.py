"""``flask outbox …``: sending mail where no worker does."""

import click
from flask.cli import AppGroup

from crm.cli_support import operator_command, tenant_option
from crm.notify import service
from tenants import Tenant, tenant_context

outbox_cli = AppGroup("outbox", help="Outgoing email.")


@outbox_cli.command("send")
@tenant_option
@operator_command
def send(tenant: Tenant) -> None:
    """Send the tenant's held and queued messages now (cron this where there is no Redis)."""
    with tenant_context(tenant):
        sent, not_sent = service.send_waiting()
    click.echo(f"sent {sent}, not sent {not_sent}")
    if not_sent:
        raise SystemExit(1)
