"""Configuration from environment variables, checked once at start-up so a mistake is a
clear message rather than a traceback."""

import base64
import binascii
import json
import os
import re
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from crm.audit.chain import canonical_text

SUPPORTED_DATABASES = ("sqlite", "postgresql")
# Seconds a Redis command may take to connect or answer. A healthy server answers in
# well under a millisecond; one that hangs (or a network that drops its packets) held a
# form post 16 s with redis-py 8's defaults, and for good with redis-py 5's.
REDIS_TIMEOUT_SECONDS = 2


class ConfigError(Exception):
    """The environment describes an app that cannot start."""


def database_url(raw: str | None, instance_path: Path) -> str:
    """The SQLAlchemy URL for ``DATABASE_URL``; an SQLite file under ``instance/`` if unset."""
    if not raw:
        return f"sqlite:///{instance_path / 'ledgerdesk.sqlite3'}"
    try:
        url = make_url(raw)
    except ArgumentError:
        raise ConfigError(
            f"DATABASE_URL is not a database URL: {raw!r}. "
            "Expected e.g. postgresql://user@host:5432/dbname or sqlite:///path/to/file.db"
        ) from None
    if url.drivername in ("postgres", "postgresql"):
        url = url.set(drivername="postgresql+psycopg")
    backend = url.get_backend_name()
    if backend not in SUPPORTED_DATABASES:
        raise ConfigError(f"DATABASE_URL uses {backend!r}; Ledgerdesk runs on PostgreSQL or SQLite.")
    if backend == "postgresql" and url.drivername != "postgresql+psycopg":
        raise ConfigError("DATABASE_URL: use the psycopg driver (postgresql+psycopg://…).")
    if backend == "postgresql" and not url.database:
        raise ConfigError("DATABASE_URL names no database.")
    return url.render_as_string(hide_password=False)


def secret_key(env: dict[str, str], instance_path: Path, production: bool) -> str:
    """``SECRET_KEY``; outside production, generated once and kept under ``instance/``."""
    if env.get("SECRET_KEY"):
        return env["SECRET_KEY"]
    if production:
        raise ConfigError("SECRET_KEY must be set when CRM_ENV=production.")
    path = instance_path / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


HOSTNAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
DEVELOPMENT_BASE_URL = "http://127.0.0.1:5000"


def public_base_url(raw: str | None, production: bool) -> str:
    """``PUBLIC_BASE_URL``, where customers reach the public pages: every absolute link
    (emails, receipts, tracking links) is built on it, never on a request's Host header."""
    if not raw:
        if production:
            raise ConfigError(
                "PUBLIC_BASE_URL must be set when CRM_ENV=production: the address customers use, "
                "e.g. https://desk.example.com. Links in emails and receipts are built on it."
            )
        return DEVELOPMENT_BASE_URL
    expected = "Expected http(s)://host[:port][/path], e.g. https://desk.example.com."
    parts = urlsplit(raw.strip())
    try:
        parts.port  # noqa: B018  (raises on a port that is not a number in range)
    except ValueError:
        raise ConfigError(f"PUBLIC_BASE_URL has an invalid port: {raw!r}. {expected}") from None
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or not HOSTNAME_RE.fullmatch(parts.hostname)
        or parts.username is not None
        or parts.query
        or parts.fragment
        or raw.strip().endswith(("?", "#"))
    ):
        raise ConfigError(f"PUBLIC_BASE_URL is not a base URL: {raw!r}. {expected}")
    return raw.strip().rstrip("/")


def host_list(raw: str | None) -> list[str]:
    """``TRUSTED_HOSTS``: extra host names requests may use, comma-separated; a leading
    dot (``.example.com``) trusts every subdomain."""
    hosts = [host.strip().lower() for host in (raw or "").split(",") if host.strip()]
    for host in hosts:
        if not HOSTNAME_RE.fullmatch(host.removeprefix(".")):
            raise ConfigError(
                f"TRUSTED_HOSTS: {host!r} is not a host name. "
                "Expected names separated by commas, e.g. desk.example.com,.example.net"
            )
    return hosts


def checkpoint_minutes(raw: str | None) -> int:
    if not raw:
        return 10
    if not (raw.strip().isascii() and raw.strip().isdigit() and 1 <= int(raw) <= 1440):
        raise ConfigError(
            f"AUDIT_CHECKPOINT_MINUTES must be a whole number of minutes from 1 to 1440, not {raw!r}."
        )
    return int(raw)


def proxy_count(raw: str | None) -> int:
    """``TRUSTED_PROXIES``: how many proxies in front of the app set X-Forwarded-* (0: none)."""
    if not raw:
        return 0
    if not (raw.strip().isascii() and raw.strip().isdigit()):
        raise ConfigError(f"TRUSTED_PROXIES must be a whole number of proxies (0, 1, 2…), not {raw!r}.")
    return int(raw)


KEY_HELP = "Create one with: openssl genpkey -algorithm ed25519 -out audit-signing-key.pem"
DEVELOPMENT_SIGNING_KEY = "audit-signing-key.pem"


def signing_key(env: dict[str, str], instance_path: Path, production: bool) -> Ed25519PrivateKey:
    """The Ed25519 key audit checkpoints and bundle manifests are signed with:
    ``AUDIT_SIGNING_KEY_FILE`` (a PEM file, as openssl writes it) or ``AUDIT_SIGNING_KEY``
    (base64 of the 32 raw private bytes). Outside production a development key is
    created once under ``instance/``."""
    if env.get("AUDIT_SIGNING_KEY"):
        try:
            raw = base64.b64decode(env["AUDIT_SIGNING_KEY"], validate=True)
            return Ed25519PrivateKey.from_private_bytes(raw)
        except (binascii.Error, ValueError):
            raise ConfigError(
                "AUDIT_SIGNING_KEY must be the base64 of a 32-byte Ed25519 private key. " + KEY_HELP
            ) from None
    path = env.get("AUDIT_SIGNING_KEY_FILE")
    if not path:
        if production:
            raise ConfigError(
                "AUDIT_SIGNING_KEY_FILE (or AUDIT_SIGNING_KEY) must be set when CRM_ENV=production: "
                "the Ed25519 key audit checkpoints and exports are signed with. " + KEY_HELP
            )
        development = instance_path / DEVELOPMENT_SIGNING_KEY
        if not development.exists():
            pem = Ed25519PrivateKey.generate().private_bytes(
                Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
            )
            development.write_bytes(pem)
            development.chmod(0o600)
        path = str(development)
    try:
        key = load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as error:
        raise ConfigError(
            f"AUDIT_SIGNING_KEY_FILE: cannot read an Ed25519 key from {path}: {error}"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"AUDIT_SIGNING_KEY_FILE: {path} holds a key that is not Ed25519. " + KEY_HELP)
    return key


def old_public_keys(raw: str | None) -> list[str]:
    """``AUDIT_OLD_PUBLIC_KEYS_FILE``: a JSON file of the public keys used before the
    current one, ``{"keys": [{"public_key": base64 of 32 bytes}, …]}`` (the format the
    keys endpoint serves, so a saved copy of it works). They stay published after a
    rotation, so older checkpoints and bundles still verify."""
    if not raw:
        return []
    try:
        entries = json.loads(Path(raw).read_text())["keys"]
        keys = [entry["public_key"] for entry in entries]
        if not all(len(base64.b64decode(key, validate=True)) == 32 for key in keys):
            raise ValueError("a key is not 32 bytes")
    except (OSError, ValueError, KeyError, TypeError, binascii.Error) as error:
        raise ConfigError(
            f'AUDIT_OLD_PUBLIC_KEYS_FILE: expected {{"keys": [{{"public_key": base64}}]}} in {raw}: {error}'
        ) from None
    return keys


def from_environment(instance_path: Path, env: dict[str, str] | None = None) -> dict:
    """Flask config values read from the environment."""
    env = dict(os.environ if env is None else env)
    production = env.get("CRM_ENV", "development") == "production"
    instance_path.mkdir(parents=True, exist_ok=True)
    chaining = env.get("AUDIT_CHAINING") or "inline"
    if chaining not in ("inline", "background"):
        raise ConfigError(f"AUDIT_CHAINING must be inline or background, not {chaining!r}.")
    return {
        "CRM_ENV": "production" if production else "development",
        "SECRET_KEY": secret_key(env, instance_path, production),
        "SQLALCHEMY_DATABASE_URI": database_url(env.get("DATABASE_URL"), instance_path),
        "REDIS_URL": env.get("REDIS_URL") or None,
        "SMTP_URL": env.get("SMTP_URL") or None,
        "MAIL_FROM": env.get("MAIL_FROM") or "ledgerdesk@localhost",
        # Where customers reach the public pages: every absolute link is built on it.
        "PUBLIC_BASE_URL": public_base_url(env.get("PUBLIC_BASE_URL"), production),
        # Hosts requests may name besides PUBLIC_BASE_URL's (crm.http_edge adds that one).
        "TRUSTED_HOSTS": host_list(env.get("TRUSTED_HOSTS")),
        # Proxies in front of the app whose X-Forwarded-For/-Proto are believed.
        "TRUSTED_PROXIES": proxy_count(env.get("TRUSTED_PROXIES")),
        # Where rate limits count (crm.ratelimit); while it is unreachable, each process
        # counts in its own memory rather than failing every request (fault drill 1).
        "RATELIMIT_STORAGE_URI": env.get("REDIS_URL") or "memory://",
        # The rq queue jobs go to and workers take from (several deployments on one Redis).
        "JOBS_QUEUE": env.get("JOBS_QUEUE") or "crm",
        # Evidence files, stored by SHA-256; default instance/uploads.
        "UPLOAD_FOLDER": env.get("UPLOAD_FOLDER") or None,
        # Tenant exports started from the app, until their link expires; default
        # instance/exports. With several machines, a shared volume, like uploads.
        "EXPORT_FOLDER": env.get("EXPORT_FOLDER") or None,
        # "inline": each commit chains its audit events before returning; "background":
        # a chainer thread per process does, moments later (see docs/audit-format.md).
        "AUDIT_CHAINING": chaining,
        # Checkpoints and bundle manifests are signed with it (crm.audit.signing).
        "AUDIT_SIGNING_KEY": signing_key(env, instance_path, production),
        "AUDIT_OLD_PUBLIC_KEYS": old_public_keys(env.get("AUDIT_OLD_PUBLIC_KEYS_FILE")),
        # Minutes between checkpoints of chains that moved (the rq scheduler's).
        "AUDIT_CHECKPOINT_MINUTES": checkpoint_minutes(env.get("AUDIT_CHECKPOINT_MINUTES")),
        # Lead and do-not-contact CSVs between their upload and their import; default
        # instance/imports. With several machines, a shared volume.
        "IMPORT_FOLDER": env.get("IMPORT_FOLDER") or None,
        # Calls per key (the limits library's notation: 600/minute, 10/second); default 600/minute.
        "API_RATE_LIMIT": env.get("API_RATE_LIMIT") or None,
        # Webhooks may reach private, loopback and link-local addresses (a receiver on
        # the same host or network); refused by default.
        "WEBHOOKS_ALLOW_PRIVATE": (env.get("WEBHOOKS_ALLOW_PRIVATE") or "").lower() in ("1", "true", "yes"),
        "SESSION_COOKIE_SECURE": production,
    }


DEFAULTS = {
    # Every JSON column is written canonically, so audit data hashes as it is stored.
    "SQLALCHEMY_ENGINE_OPTIONS": {"json_serializer": canonical_text},
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "REMEMBER_COOKIE_HTTPONLY": True,
    "REMEMBER_COOKIE_SAMESITE": "Lax",
    "MAX_CONTENT_LENGTH": 60 * 1024 * 1024,
    "BOOTSTRAP_SERVE_LOCAL": True,
    "BABEL_DEFAULT_LOCALE": "en",
    "BABEL_DEFAULT_TIMEZONE": "UTC",
    "PASSWORD_HASH_METHOD": "scrypt",
    # Failed sign-ins for one email from one address before that pair is locked.
    "LOGIN_MAX_FAILURES": 5,
    "LOGIN_WINDOW_MINUTES": 15,
    "LOGIN_LOCK_MINUTES": 15,
    # Failed sign-ins from one address (an IPv6 /64), whatever the email: past this many
    # in the window, every sign-in from it waits out the lock (429 with Retry-After).
    "LOGIN_SOURCE_MAX_FAILURES": 20,
    "LOGIN_SOURCE_WINDOW_MINUTES": 15,
    "LOGIN_SOURCE_LOCK_MINUTES": 15,
    "WTF_CSRF_TIME_LIMIT": None,
}
