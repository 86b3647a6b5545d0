"""Versioned configuration: a tenant's calendars, its SLA policy and its deadline rules.

Every change is a new immutable ``ConfigVersion`` with the next number, recorded in the
audit trail with its content hash. A new tenant gets the defaults when it is created; one
made before that rule gets them the first time something that writes asks (a page that
only reads shows them without keeping them), created exactly once even by concurrent
first requests.
"""

from collections.abc import Callable
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session

from crm.audit.chain import canonical_text, digest
from crm.audit.service import Actor, record
from crm.columns import utcnow
from crm.errors import Conflict, DomainError, NotFound
from crm.extensions import db, insert_or_ignore
from crm.sla import rules
from crm.sla.businesstime import CalendarError, CalendarSpec
from crm.sla.models import Clock, ConfigKind, ConfigVersion
from tenants import cache as tenant_cache
from tenants import current_tenant, current_tenant_id

CACHE_KEY = "sla_current_versions"


def _cache() -> dict:
    return db.session.info.setdefault(CACHE_KEY, {})


def _default_body(kind: ConfigKind) -> dict[str, Any]:
    if kind == ConfigKind.CALENDAR:
        return rules.default_calendar(current_tenant().timezone).to_json()
    if kind == ConfigKind.SLA_POLICY:
        return rules.DEFAULT_POLICY.to_json()
    return rules.DEFAULT_DEADLINES.to_json()


DEFAULT_KEYS = {
    ConfigKind.CALENDAR: rules.DEFAULT_CALENDAR,
    ConfigKind.SLA_POLICY: rules.DEFAULT_KEY,
    ConfigKind.DEADLINES: rules.DEFAULT_KEY,
}


def _ensure_default(kind: ConfigKind) -> None:
    """Create version 1 of a default the tenant does not have yet; only the transaction
    that inserts it records the event."""
    key = DEFAULT_KEYS[kind]
    body = _default_body(kind)
    sha256 = digest(canonical_text(body))
    row = {"kind": kind, "key": key, "version": 1, "body": body, "sha256": sha256, "created_at": utcnow()}
    if insert_or_ignore(ConfigVersion, row):
        record(
            f"{kind}.version_created",
            kind,
            key,
            actor=Actor.system(),
            data={
                "id": _newest(kind, key).id,
                "key": key,
                "version": 1,
                "sha256": sha256,
                "default": True,
                "body": body,
            },
        )


def create_defaults() -> None:
    """Version 1 of the tenant's default calendar, SLA policy and deadline rules (a new
    tenant's; in its creation's transaction)."""
    for kind in DEFAULT_KEYS:
        _ensure_default(kind)


def current(kind: ConfigKind, key: str | None = None) -> ConfigVersion | None:
    """The newest version of ``key`` (the default one if not given), read once per
    session. A default that does not exist yet is created."""
    key = key or DEFAULT_KEYS[kind]
    cache_key = (current_tenant_id(), kind, key)
    cache = _cache()
    if cache_key not in cache:
        version = _newest(kind, key)
        if version is None and key == DEFAULT_KEYS[kind]:
            _ensure_default(kind)
            version = _newest(kind, key)
        cache[cache_key] = version
    return cache[cache_key]


def install(session_class: type[Session]) -> None:
    """A process keeps the newest versions while it hears of every new one."""
    tenant_cache.watch(session_class, ConfigVersion)


def prefetch(*pairs: tuple[ConfigKind, str]) -> None:
    """Read the newest version of each (kind, key) in one query into the session's cache,
    for ``current`` (a ticket's creation asks for three), from this process's copies
    when it has them (``tenants.cache``)."""
    tenant_id, cache = current_tenant_id(), _cache()
    wanted = tuple((kind, key) for kind, key in pairs if (tenant_id, kind, key) not in cache)
    if not wanted:
        return
    kept = tenant_cache.cached(
        db.engine,
        ("config_versions", tenant_id, wanted),
        lambda: _newest_copies(wanted),
        session=db.session(),
    )
    for version in kept:
        # The kept copy itself, outside the session: a version never changes.
        cache[(tenant_id, version.kind, version.key)] = version


def _newest_copies(wanted: tuple[tuple[ConfigKind, str], ...]) -> tuple[ConfigVersion, ...]:
    pair = tuple_(ConfigVersion.kind, ConfigVersion.key)
    newest = (
        select(ConfigVersion.kind, ConfigVersion.key, func.max(ConfigVersion.version).label("version"))
        .where(pair.in_(wanted))
        .group_by(ConfigVersion.kind, ConfigVersion.key)
        .subquery()
    )
    query = select(ConfigVersion).join(
        newest,
        (ConfigVersion.kind == newest.c.kind)
        & (ConfigVersion.key == newest.c.key)
        & (ConfigVersion.version == newest.c.version),
    )
    return tuple(tenant_cache.detached_copy(version) for version in db.session.scalars(query))


def _newest(kind: ConfigKind, key: str) -> ConfigVersion | None:
    return db.session.scalars(
        select(ConfigVersion)
        .where(ConfigVersion.kind == kind, ConfigVersion.key == key)
        .order_by(ConfigVersion.version.desc())
        .limit(1)
    ).one_or_none()


def by_id(version_id: int | None) -> ConfigVersion | None:
    if version_id is None:
        return None
    return db.session.get(ConfigVersion, version_id)


def history(kind: ConfigKind, key: str) -> list[ConfigVersion]:
    return list(
        db.session.scalars(
            select(ConfigVersion)
            .where(ConfigVersion.kind == kind, ConfigVersion.key == key)
            .order_by(ConfigVersion.version.desc())
        )
    )


def calendars() -> list[ConfigVersion]:
    """The newest version of each of the tenant's calendars, by name."""
    current(ConfigKind.CALENDAR)  # the default exists from the first look
    newest = (
        select(ConfigVersion.key, func.max(ConfigVersion.version).label("version"))
        .where(ConfigVersion.kind == ConfigKind.CALENDAR)
        .group_by(ConfigVersion.key)
        .subquery()
    )
    query = (
        select(ConfigVersion)
        .join(newest, (ConfigVersion.key == newest.c.key) & (ConfigVersion.version == newest.c.version))
        .where(ConfigVersion.kind == ConfigKind.CALENDAR)
        .order_by(ConfigVersion.key)
    )
    return list(db.session.scalars(query))


def calendar_names() -> set[str]:
    return {version.key for version in calendars()}


def calendar(name: str) -> ConfigVersion:
    version = current(ConfigKind.CALENDAR, name)
    if version is None:
        raise NotFound(_l("There is no calendar named %(name)s.", name=name), "calendar")
    return version


def calendar_error(error: CalendarError, field: str) -> DomainError:
    return DomainError(_l("The calendar was not changed: %(reason)s", reason=str(error)), field)


def _check(kind: ConfigKind, body: dict[str, Any]) -> None:
    """A version is readable by the clocks that will pin it, or it is not stored."""
    if kind == ConfigKind.CALENDAR:
        try:
            CalendarSpec.from_json(body)
        except CalendarError as error:
            raise calendar_error(error, "calendar") from None
    elif kind == ConfigKind.SLA_POLICY:
        rules.policy_from_json(body, calendar_names())
    else:
        rules.deadline_rules_from_json(body, calendar_names())


def save(
    kind: ConfigKind, key: str, body: dict[str, Any], *, actor: Actor, user_id: int | None = None
) -> ConfigVersion | None:
    """Store ``body`` as the next version of ``key``; None if it equals the newest one.
    Two people saving at once: the second is told to look again, nothing is lost."""
    _check(kind, body)
    latest = current(kind, key)
    sha256 = digest(canonical_text(body))
    if latest is not None and latest.sha256 == sha256:
        return None
    number = (latest.version if latest else 0) + 1
    row = {"kind": kind, "key": key, "version": number, "body": body, "sha256": sha256}
    if not insert_or_ignore(ConfigVersion, {**row, "created_by_id": user_id, "created_at": utcnow()}):
        raise Conflict(
            _l("Someone else changed this at the same time. Look at the newest version and try again."),
            "key",
        )
    version = _newest(kind, key)
    _cache()[(current_tenant_id(), kind, key)] = version
    record(
        f"{kind}.version_created",
        kind,
        key,
        actor=actor,
        data={
            "id": version.id,
            "key": key,
            "version": version.version,
            "sha256": sha256,
            "previous": latest.version if latest else None,
            "body": body,
        },
    )
    return version


# --- reading a version's document --------------------------------------------------------
# Versions never change and their ids are unique across tenants, so parsed documents
# can be kept by id for the life of the process.


_PARSED: dict[tuple[str, int], Any] = {}


def _parsed(version: ConfigVersion, parse: Callable[[dict], Any]) -> Any:
    key = (parse.__qualname__, version.id)
    if key not in _PARSED:
        if len(_PARSED) > 4096:
            _PARSED.clear()
        _PARSED[key] = parse(version.body)
    return _PARSED[key]


def calendar_spec(version: ConfigVersion) -> CalendarSpec:
    return _parsed(version, CalendarSpec.from_json)


def policy(version: ConfigVersion) -> rules.Policy:
    return _parsed(version, rules.policy_from_json)


def deadline_rules(version: ConfigVersion) -> rules.DeadlineRules:
    return _parsed(version, rules.deadline_rules_from_json)


def profile_of(clock: Clock) -> rules.Profile | None:
    """The regulatory profile a clock was started under: a built-in one by its code, or
    the tenant's own in the deadline rules version the clock pinned."""
    if clock.rule in rules.BUILTIN_PROFILES:
        return rules.BUILTIN_PROFILES[clock.rule]
    version = by_id(clock.config_version_id)
    if version is None or version.kind != ConfigKind.DEADLINES:
        return None
    return deadline_rules(version).profiles().get(clock.rule)
