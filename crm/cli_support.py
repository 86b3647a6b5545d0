"""What every operator command shares: a clean message instead of a traceback, and the
tenant a command acts for."""

import getpass
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps

import click
from sqlalchemy.exc import OperationalError, ProgrammingError

from crm.audit.service import Actor
from crm.errors import DomainError
from crm.extensions import db
from crm.provisioning.service import tenant_by_slug


def operator_actor() -> Actor:
    return Actor.operator(f"cli:{getpass.getuser()}@{socket.gethostname()}")


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Turn refusals and an unreachable database into a message and exit status 1."""
    try:
        yield
    except DomainError as error:
        db.session.rollback()
        raise click.ClickException(error.message) from None
    except (OperationalError, ProgrammingError) as error:
        db.session.rollback()
        raise click.ClickException(
            f"database error: {str(error.orig).strip()}. Is DATABASE_URL right, and has "
            "'flask --app wsgi db upgrade' been run?"
        ) from None


def operator_command(command: Callable) -> Callable:
    """A command whose errors are reported by ``friendly_errors``."""

    @wraps(command)
    def run(*args, **kwargs):
        with friendly_errors():
            return command(*args, **kwargs)

    return run


def tenant_option(command: Callable) -> Callable:
    """``--tenant SLUG``, handed to the command as the Tenant (any status) ``tenant``."""

    @wraps(command)
    def resolved(*args, tenant: str, **kwargs):
        with friendly_errors():
            found = tenant_by_slug(tenant)
        if found is None:
            raise click.BadParameter(f"no tenant has the slug {tenant!r}", param_hint="--tenant")
        return command(*args, tenant=found, **kwargs)

    return click.option("--tenant", required=True, metavar="SLUG", help="The tenant's slug.")(resolved)
