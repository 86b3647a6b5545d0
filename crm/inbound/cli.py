"""``flask mail deliver --tenant SLUG < message.eml``: the pipe an MTA hands each
message of a tenant's support address to, the way RT's mailgate and osTicket's pipe
work. Prints what became of it; exits 0 once it is filed or knowingly ignored, so the
MTA neither retries nor bounces it, and non-zero when it could not be read or stored, so
the MTA keeps it and tries again."""

import imaplib
import sys

import click
from flask.cli import AppGroup

from crm.cli_support import operator_actor, operator_command, tenant_option
from crm.extensions import db
from crm.inbound import imap as imap_poller
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


@mail_cli.command("imap")
@tenant_option
@click.option(
    "--url", help="imaps://user:password@host/INBOX (or imap://…); read from the prompt if left out"
)
@click.option("--clear", is_flag=True, help="Stop fetching from a mailbox.")
@operator_command
def imap(tenant: Tenant, url: str | None, clear: bool) -> None:
    """Fetch the tenant's inbound mail from an IMAP mailbox (its password kept sealed)."""
    if not clear and not url:
        url = click.prompt("mailbox URL", hide_input=True)
    with tenant_context(tenant):
        # The operator's choice: a mail server on their own network is theirs to name.
        box = imap_poller.set_mailbox(None if clear else url, actor=operator_actor(), public_only=False)
        db.session.commit()
    click.echo(f"mailbox: {box.shown()}" if box else "mailbox: none")


@mail_cli.command("poll")
@tenant_option
@operator_command
def poll(tenant: Tenant) -> None:
    """Deliver the unread messages of the tenant's mailbox now (cron this without Redis)."""
    with tenant_context(tenant):
        try:
            result = imap_poller.poll()
        except (OSError, imaplib.IMAP4.error) as error:
            raise click.ClickException(f"could not read the mailbox: {error}") from None
    click.echo(result.summary())
    if result.outcomes["failed"]:
        raise SystemExit(1)
