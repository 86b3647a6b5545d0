"""``flask audit …``: checking a tenant's chain and signing checkpoints of it."""

import click
from flask.cli import AppGroup

from crm.audit import checkpoints, service
from crm.cli_support import operator_actor, operator_command, tenant_option
from crm.extensions import db
from tenants import Tenant, tenant_context

audit_cli = AppGroup("audit", help="Inspect and verify audit trails.")


@audit_cli.command("verify")
@tenant_option
@operator_command
def verify(tenant: Tenant) -> None:
    """Recompute the tenant's hash chain, then check every stored checkpoint against it
    (signature, head, root, consistency with the next); exit 1 at the first that does
    not hold."""
    with tenant_context(tenant):
        report = service.verify_chain()
        if not report.ok:
            click.echo(
                f"FAILED at seq {report.first_bad_seq}: {report.problem} "
                f"({report.count} events verified before it)",
                err=True,
            )
            raise SystemExit(1)
        signed = checkpoints.verify_checkpoints()
    if not signed.ok:
        click.echo(
            f"FAILED at checkpoint of tree size {signed.tree_size} ({signed.time}): {signed.problem}",
            err=True,
        )
        raise SystemExit(1)
    click.echo(f"ok: {report.count} events, head {report.head_hash}")
    if report.clock_steps_back:
        click.echo(
            f"note: {report.clock_steps_back} events record an earlier time than the event before them,"
            f" by up to {report.largest_step_back.total_seconds():.3f} s. Events are chained in the order"
            " their changes committed, so concurrent changes step back by up to a transaction's length;"
            " a step of minutes or more means a server's clock was set back. chained_at never goes back."
        )
    click.echo(f"checkpoints: {signed.count}, each signed by a published key and matching the chain")


@audit_cli.command("checkpoint")
@tenant_option
@operator_command
def checkpoint(tenant: Tenant) -> None:
    """Sign a checkpoint of the tenant's chain now, if it moved since the last one (the
    rq scheduler does this every AUDIT_CHECKPOINT_MINUTES; cron can run it instead)."""
    with tenant_context(tenant):
        signed, written = checkpoints.write_checkpoint(actor=operator_actor())
        # Said before the commit expires it: the row is seen only in its tenant's context.
        stated = f"tree size {signed.tree_size}, root {signed.root}, key {signed.key_id}" if signed else ""
        db.session.commit()
    if signed is None:
        click.echo("unchanged: the chain is empty")
    else:
        click.echo(f"checkpoint: {stated}" if written else f"unchanged: {stated}")


@audit_cli.command("checkpoint-all")
@operator_command
def checkpoint_all() -> None:
    """A checkpoint for every tenant whose chain moved: for cron, without Redis."""
    written = checkpoints.checkpoint_all()
    click.echo(f"checkpoints written for {len(written)} tenants")


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
