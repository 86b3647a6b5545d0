"""``flask webhooks deliver``: the retry sweep, for cron where no rq worker runs."""

import click
from flask.cli import AppGroup

from crm.cli_support import operator_command
from crm.webhooks import service

webhooks_cli = AppGroup("webhooks", help="Deliver due webhook retries.")


@webhooks_cli.command("deliver")
@operator_command
def deliver() -> None:
    """Attempt every delivery whose next try is due (run every minute from cron)."""
    click.echo(f"attempted {service.deliver_due()} deliveries")
