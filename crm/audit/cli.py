"""``flask audit …``: checking a tenant's chain."""

import click
from flask.cli import AppGroup

from crm.audit import service
from crm.cli_support import operator_command, tenant_option
from crm.extensions import db
from tenants import Tenant, tenant_context

audit_cli = AppGroup("audit", help="Inspect and verify audit trails.")


@audit_cli.command("verify")
@tenant_option
@operator_command
def verify(tenant: Tenant) -> None:
    """Recompute the tenant's hash chain; exit 1 at the first bad event."""
    with tenant_context(tenant):
        report = service.verify_chain()
    if report.ok:
        click.echo(f"ok: {report.count} events, head {report.head_hash}")
        return
    click.echo(
        f"FAILED at seq {report.first_bad_seq}: {report.problem} ({report.count} events verified before it)",
        err=True,
    )
    raise SystemExit(1)


@audit_cli.command("chain")
@tenant_option
@operator_command
def chain(tenant: Tenant) -> None:
    """Chain the tenant's events still waiting in the inbox (normally none: each commit
    has them chained; after a crash between a commit and its chaining, this sweeps them
    up)."""
    click.echo(f"chained {service.chain_pending(db.engine, tenant.id)} waiting events")


@audit_cli.command("chain-stragglers")
@operator_command
def chain_stragglers() -> None:
    """Chain, for every tenant, events that have waited in the inbox more than 30 s. The
    rq worker does this every minute; without Redis, run it from cron."""
    chained = service.chain_stragglers(db.engine)
    click.echo(f"chained {sum(chained.values())} waiting events of {len(chained)} tenants")
