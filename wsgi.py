"""The WSGI entry point: ``gunicorn wsgi:app`` and ``flask --app wsgi …``."""

import sys

from crm import create_app
from crm.config import ConfigError

try:
    app = create_app()
except ConfigError as error:
    print(f"Ledgerdesk cannot start: {error}", file=sys.stderr)
    raise SystemExit(2) from None
