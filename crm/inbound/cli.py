"""``flask mail deliver --tenant SLUG < message.eml``: the pipe an MTA hands each
message of a tenant's support address to, the way RT's mailgate and osTicket's pipe
work. Prints what became of it; exits 0 once it is filed or knowingly ignored, so the
MTA neither retries nor bounces it, and non-zero when it could not be read or stored, so
the MTA keeps it and tries again."""

import sys

import click
from flask.cli import AppGroup

from crm.cli_support import operator_command, tenant_option
from crm.extensions import db
from crm.inbound import service
from tenants import Tenant, tenant_context

mail_cli = AppGroup("mail", help="Inbound email.")
MAX_MESSAGE_BYTES = 60 * 2**20


@mail_cli.command("deliver")
@tenant_option
@operator_command
def deliver(tenant: Tenant) -> None:
    """Read one message (RFC 5322) from standard input and file it."""
    raw = sys.stdin.buffer.read(MAX_MESSAGE_BYTES + 1)
    if not raw.strip() or len(raw) > MAX_MESSAGE_BYTES:
        raise click.ClickException("expected one email message on standard input (at most 60 MB)")
    with tenant_context(tenant):
        delivery = service.deliver(raw)
        db.session.commit()
    if delivery.outcome == "filed":
        click.echo(f"filed on {delivery.reference}")
    elif delivery.outcome == "new":
        click.echo(f"new ticket {delivery.reference}")
    else:
        click.echo(f"ignored: {delivery.reason}")
