"""``flask demo seed``."""

import os

import click
from flask.cli import AppGroup

from crm.cli_support import operator_command
from crm.demo.seed import SLUG, USERS, SeedResult, seed_demo
from crm.extensions import db

demo_cli = AppGroup("demo", help="The demo tenant.")

DEFAULT_PASSWORD = "ledgerdesk-demo"


@demo_cli.command("seed")
@operator_command
def seed() -> None:
    """Create the demo tenant and users (idempotent)."""
    password = os.environ.get("DEMO_PASSWORD", DEFAULT_PASSWORD)
    result = seed_demo(password)
    db.session.commit()
    click.echo("created: " + ", ".join(result.created) if result.created else "demo data already present")
    click.echo(f"Sign in at http://127.0.0.1:5000/t/{SLUG}/login as any of:")
    for email, role, _name in USERS:
        click.echo(f"  {email:<22} ({role})")
    click.echo(f"password: {password}")
    click.echo(f"Customers file refund requests at http://127.0.0.1:5000/t/{SLUG}/refund")
    click.echo(f"Prospects ask for a free trial at http://127.0.0.1:5000/t/{SLUG}/trial")
    for line in ticket_lines(result):
        click.echo(line)


def ticket_lines(result: SeedResult) -> list[str]:
    """One line per ticket seeded: its tracking page, or why it has none."""
    return [
        f"  tracking page of {reference}: {link}" for reference, link in result.tracking_links.items()
    ] + [f"  {reference} has no tracking page: {why}" for reference, why in result.without_links.items()]
