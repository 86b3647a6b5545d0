"""Creating, listing, revoking and checking API keys. A key acts as itself: its calls are
audited with the actor ``api_key`` and the key's id and name."""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import select, update
from sqlalchemy.orm import Session, make_transient_to_detached

from crm.api.models import SCOPES, ApiKey
from crm.audit.service import Actor, record
from crm.auth.models import User
from crm.columns import utcnow
from crm.errors import DomainError, NotFound
from crm.extensions import db
from crm.tickets.input_checks import check_text
from tenants import cache as tenant_cache
from tenants import spanning

KEY_PREFIX = "ldk_"
# last_used_at is written at most this often per key, so busy keys do not write on every call.
LAST_USED_GRANULARITY_SECONDS = 60


@dataclass(frozen=True)
class NewKey:
    key: ApiKey
    secret: str  # shown once


def key_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_scopes(scopes: list[str] | str) -> list[str]:
    if isinstance(scopes, str):
        scopes = [scope.strip() for scope in scopes.split(",") if scope.strip()]
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise DomainError(
            _l("Choose scopes among %(scopes)s.", scopes=", ".join(SCOPES)),
            "scopes",
        )
    return [scope for scope in SCOPES if scope in scopes]


def create_key(
    *, name: str, scopes: list[str] | str, expires_at: datetime | None, actor: Actor, user: User | None = None
) -> NewKey:
    name = check_text(name, "name", 100, required=True)
    scopes = check_scopes(scopes)
    if expires_at is not None and expires_at <= utcnow():
        raise DomainError(_l("The expiry must be in the future."), "expires_at")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        name=name,
        scopes=scopes,
        key_hash=key_digest(secret),
        prefix=secret[:12],
        created_by_id=user.id if user else None,
        expires_at=expires_at,
    )
    db.session.add(key)
    db.session.flush()
    record(
        "api_key.created",
        "api_key",
        key.id,
        actor=actor,
        data={
            "name": name,
            "scopes": scopes,
            "prefix": key.prefix,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
    )
    return NewKey(key, secret)


def list_keys() -> list[ApiKey]:
    return list(db.session.scalars(select(ApiKey).order_by(ApiKey.id)))


def key_by_id(key_id: int) -> ApiKey | None:
    return db.session.get(ApiKey, key_id)


def revoke_key(key: ApiKey, *, actor: Actor) -> None:
    if key.revoked_at is not None:
        raise NotFound(_l("This key is already revoked."))
    key.revoked_at = utcnow()
    record("api_key.revoked", "api_key", key.id, actor=actor, data={"name": key.name, "prefix": key.prefix})


def install(session_class: type[Session]) -> None:
    """A process keeps the keys it has checked while it hears of every change to keys (a
    revocation reaches every process at its commit: ``tenants.cache``)."""
    tenant_cache.watch(session_class, ApiKey)


def find_key(secret: str) -> ApiKey | None:
    """The key with this secret, in any tenant (the caller compares tenants): a detached
    copy, from this process's keeping when it has one; a dialer checks a number before
    every call, and reading the key each time was a third of that answer's time."""
    if not secret.startswith(KEY_PREFIX) or len(secret) > 200:
        return None
    digest = key_digest(secret)
    return tenant_cache.cached(db.engine, ("api_key", digest), lambda: _key_copy(digest))


def _key_copy(digest: str) -> ApiKey | None:
    # Before the tenant is known: one of the questions asked of every tenant.
    values = spanning.api_key_row(db.session, select(ApiKey).where(ApiKey.key_hash == digest), digest)
    if values is None:
        return None
    copy = ApiKey(**values)
    make_transient_to_detached(copy)
    return copy


def actor_of(key: ApiKey, ip: str | None) -> Actor:
    return Actor("api_key", str(key.id), f"api_key:{key.name}", ip)


def usable(key: ApiKey, now: datetime) -> bool:
    return key.revoked_at is None and (key.expires_at is None or key.expires_at > now)


def touch(key: ApiKey, now: datetime) -> bool:
    """Note the key's use; True if that changed the row (at most once a minute). ``key``
    is a copy: the row is updated by a statement, which also drops the kept copies."""
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() >= LAST_USED_GRANULARITY_SECONDS:
        db.session.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now))
        return True
    return False
