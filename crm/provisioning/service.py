"""Tenant lifecycle. A tenant's own chain records its creation and suspension."""

import re
from zoneinfo import available_timezones

import phonenumbers
from babel.numbers import list_currencies
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm.audit.chain import digest
from crm.audit.service import Actor, record, start_chain
from crm.errors import Conflict, DomainError, NotFound
from crm.extensions import db
from crm.i18n import SUPPORTED_LOCALES
from crm.mail_addresses import check_email
from crm.money import whole_to_minor
from crm.provisioning.models import (
    CONSENT_RETENTION_DAYS_MIN,
    IDLE_MINUTES_MAX,
    IDLE_MINUTES_MIN,
    AgentDisplay,
    TenantSettings,
)
from crm.sla import versions as sla_versions
from tenants import Tenant, TenantStatus, current_tenant, current_tenant_id, tenant_context
from tenants import cache as tenant_cache

SETTINGS_KEY = "tenant_settings"
SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")
# "USD,HKD" fits the column's 64 characters 16 times over.
MAX_EXTRA_CURRENCIES = 16


def tenant_by_slug(slug: str) -> Tenant | None:
    return db.session.scalars(select(Tenant).where(Tenant.slug == slug)).one_or_none()


def list_tenants() -> list[Tenant]:
    return list(db.session.scalars(select(Tenant).order_by(Tenant.slug)))


def create_tenant(
    *,
    slug: str,
    name: str,
    actor: Actor,
    timezone: str = "Asia/Shanghai",
    locale: str | None = None,
    currency: str = "CNY",
) -> Tenant:
    """Create a tenant and start its audit chain with the creation event."""
    slug = (slug or "").strip().lower()
    name = (name or "").strip()
    currency = (currency or "").strip().upper()
    if not SLUG_RE.match(slug):
        raise DomainError(
            _l("The slug must be 1–40 lowercase letters, digits or inner hyphens."),
            "slug",
        )
    if not name or len(name) > 200:
        raise DomainError(_l("The name must be 1–200 characters."), "name")
    if timezone not in available_timezones():
        raise DomainError(_l("Unknown time zone %(tz)s (use e.g. Asia/Shanghai).", tz=timezone), "timezone")
    if locale is not None and locale not in SUPPORTED_LOCALES:
        raise DomainError(_l("Unsupported locale %(locale)s; use en or zh_CN.", locale=locale), "locale")
    if currency not in list_currencies():
        raise DomainError(
            _l("Unknown currency %(code)s (use an ISO 4217 code such as CNY).", code=currency), "currency"
        )
    if tenant_by_slug(slug) is not None:
        raise Conflict(_l("A tenant with the slug %(slug)s already exists.", slug=slug), "slug")
    tenant = Tenant(slug=slug, name=name, timezone=timezone, locale=locale, currency=currency)
    db.session.add(tenant)
    db.session.flush()
    with tenant_context(tenant):
        start_chain()
        db.session.add(TenantSettings())
        db.session.flush()
        record(
            "tenant.created",
            "tenant",
            tenant.id,
            actor=actor,
            data={"slug": slug, "timezone": timezone, "locale": locale, "currency": currency},
        )
        sla_versions.create_defaults()
    return tenant


def suspend_tenant(slug: str, *, actor: Actor) -> Tenant:
    """Suspend a tenant: all its URLs answer 404 until it is reactivated."""
    tenant = tenant_by_slug(slug)
    if tenant is None:
        raise NotFound(_l("No tenant has the slug %(slug)s.", slug=slug), "slug")
    if tenant.status == TenantStatus.SUSPENDED:
        return tenant
    tenant.status = TenantStatus.SUSPENDED
    with tenant_context(tenant):
        record("tenant.suspended", "tenant", tenant.id, actor=actor, data={"slug": tenant.slug})
    return tenant


def install(session_class: type[Session]) -> None:
    """A process keeps each tenant's settings while it hears of every change to them."""
    tenant_cache.watch(session_class, TenantSettings)


def tenant_settings() -> TenantSettings:
    """The settings of the tenant in context, read once per transaction (a refund
    submission asks for them several times), and from this process's copy when it has
    one (``tenants.cache``): every public page asks for them. The object is the
    session's own, so a change to it is saved as before."""
    cache = db.session.info.setdefault(SETTINGS_KEY, {})
    tenant_id = current_tenant_id()
    if tenant_id not in cache:
        in_session = db.session.identity_map.get(db.session.identity_key(TenantSettings, tenant_id))
        if in_session is None and tenant_cache.keeping(db.engine):
            kept = tenant_cache.cached(db.engine, ("settings", tenant_id), _settings_copy)
            # load=False: into the session as kept, without reading the row again.
            cache[tenant_id] = db.session.merge(kept, load=False)
        else:
            cache[tenant_id] = in_session or db.session.scalars(select(TenantSettings)).one()
    return cache[tenant_id]


def _settings_copy() -> TenantSettings:
    """A detached copy of the settings row, for the process to keep."""
    return tenant_cache.detached_copy(db.session.scalars(select(TenantSettings)).one())


def accepted_currencies() -> tuple[str, ...]:
    """The currencies the tenant in context accepts on refunds: its own first, then the
    others its admin allowed, in the order given."""
    own = current_tenant().currency
    extras = [code for code in tenant_settings().accepted_currencies.split(",") if code and code != own]
    return (own, *extras)


def parse_currencies(text: str | None) -> str:
    """A comma- or space-separated list of ISO 4217 codes, checked against the codes
    Babel knows and stored as "USD,HKD": upper case, each once, without the tenant's own
    currency (always accepted)."""
    known = list_currencies()
    own = current_tenant().currency
    codes: list[str] = []
    for word in re.split(r"[\s,;，、]+", (text or "").strip().upper()):
        if not word or word == own or word in codes:
            continue
        if word not in known:
            if re.fullmatch(r"[A-Z0-9]{1,8}", word):
                raise DomainError(
                    _l("Unknown currency %(code)s (use ISO 4217 codes such as USD).", code=word),
                    "accepted_currencies",
                )
            raise DomainError(_l("Use ISO 4217 codes such as USD, HKD."), "accepted_currencies")
        codes.append(word)
    if len(codes) > MAX_EXTRA_CURRENCIES:
        raise DomainError(
            _l("At most %(n)d currencies besides your own.", n=MAX_EXTRA_CURRENCIES), "accepted_currencies"
        )
    return ",".join(codes)


TEXT_SETTINGS = frozenset(
    {
        "privacy_notice",
        "outside_options_en",
        "outside_options_zh",
        "refund_reasons",
        "consent_contact_text",
        "consent_marketing_text",
    }
)
LEAD_LIMITS = {
    "first_contact_minutes": (5, 7 * 24 * 60),
    "unreachable_after_attempts": (1, 50),
    "consent_retention_days": (CONSENT_RETENTION_DAYS_MIN, 10 * 366),
}


def _lead_settings(changes: dict, settings: TenantSettings) -> dict:
    """The leads' settings asked for; one a form did not send stays as it is."""
    wanted = {}
    for name, (low, high) in LEAD_LIMITS.items():
        value = changes.get(name)
        value = getattr(settings, name) if value is None else value
        if not low <= value <= high:
            raise DomainError(_l("Between %(min)d and %(max)d.", min=low, max=high), name)
        wanted[name] = value
    for name in ("consent_contact_text", "consent_marketing_text"):
        if name not in changes:
            wanted[name] = getattr(settings, name)
            continue
        text = (changes.get(name) or "").strip() or None
        if text and len(text) > 1000:
            raise DomainError(_l("Use at most %(n)d characters.", n=1000), name)
        wanted[name] = text
    return wanted


def update_settings(changes: dict, *, actor: Actor) -> TenantSettings:
    """Change the tenant's settings; the audit event holds each value before and after
    (the privacy notice as a digest)."""
    settings = tenant_settings()
    prefix = (changes.get("ticket_prefix") or "").strip().upper()
    if not re.fullmatch(r"[A-Z]{1,8}", prefix):
        raise DomainError(_l("Use 1 to 8 letters, such as RF."), "ticket_prefix")
    if not 1 <= changes.get("form_submissions_per_hour", 0) <= 10_000:
        raise DomainError(_l("Between 1 and 10000."), "form_submissions_per_hour")
    if changes.get("agent_display") not in (AgentDisplay.FIRST_NAME, AgentDisplay.TEAM):
        raise DomainError(_l("Choose how customers see who answers."), "agent_display")
    team_name = (changes.get("team_name") or "").strip()
    if not 1 <= len(team_name) <= 100:
        raise DomainError(_l("The team name must be 1–100 characters."), "team_name")
    country = (changes.get("country") or "").strip().upper()
    if country not in phonenumbers.SUPPORTED_REGIONS:
        raise DomainError(_l("Use a two-letter country code, such as CN."), "country")
    notice = (changes.get("privacy_notice") or "").strip() or None
    if notice and len(notice) > 5000:
        raise DomainError(_l("Use at most %(n)d characters.", n=5000), "privacy_notice")
    reasons = (changes.get("refund_reasons") or "").strip() or None
    for number, line in enumerate((reasons or "").splitlines(), start=1):
        code = line.partition("|")[0].strip()
        if line.strip() and not re.fullmatch(r"[a-z0-9_]{1,40}", code):
            raise DomainError(
                _l('Line %(n)d: a code of lowercase letters, digits and _, then "| label".', n=number),
                "refund_reasons",
            )
    threshold = changes.get("approval_threshold")
    if threshold is None or not 0 <= threshold <= 10**9:
        raise DomainError(_l("Enter a whole amount of 0 or more."), "approval_threshold")
    options = {}
    for name in ("outside_options_en", "outside_options_zh"):
        options[name] = (changes.get(name) or "").strip() or None
        if options[name] and len(options[name]) > 5000:
            raise DomainError(_l("Use at most %(n)d characters.", n=5000), name)
    # A form without these fields (a page opened before they existed) leaves them as they are.
    idle = changes.get("idle_timeout_minutes")
    if idle is None:
        idle = settings.idle_timeout_minutes
    currencies = changes.get("accepted_currencies")
    currencies = settings.accepted_currencies if currencies is None else parse_currencies(currencies)
    if not IDLE_MINUTES_MIN <= idle <= IDLE_MINUTES_MAX:
        raise DomainError(
            _l("Between %(min)d and %(max)d minutes.", min=IDLE_MINUTES_MIN, max=IDLE_MINUTES_MAX),
            "idle_timeout_minutes",
        )
    require_two_factor = changes.get("require_two_factor")
    support = changes.get("support_address")
    if support is None:
        support = settings.support_address
    elif support.strip():
        try:
            support = check_email(support)
        except DomainError as error:
            raise DomainError(error.message, "support_address") from None
        if "+" in support.partition("@")[0]:
            raise DomainError(_l("Give the address without a plus part."), "support_address")
    else:
        support = None
    wanted = {
        "idle_timeout_minutes": idle,
        "require_two_factor": settings.require_two_factor
        if require_two_factor is None
        else bool(require_two_factor),
        "support_address": support,
        "accepted_currencies": currencies,
        "approval_threshold_minor": whole_to_minor(threshold, current_tenant().currency),
        "refund_reasons": reasons,
        **options,
        "ticket_prefix": prefix,
        "form_submissions_per_hour": changes["form_submissions_per_hour"],
        "agent_display": changes["agent_display"],
        "team_name": team_name,
        "country": country,
        "privacy_notice": notice,
        **_lead_settings(changes, settings),
    }
    if any(
        wanted[name] != getattr(settings, name) for name in ("consent_contact_text", "consent_marketing_text")
    ):
        wanted["consent_text_version"] = settings.consent_text_version + 1  # each proof names its version
    diff = {}
    for name, value in wanted.items():
        before = getattr(settings, name)
        if before != value:
            if name in TEXT_SETTINGS:
                before, shown = (digest(before) if before else None), (digest(value) if value else None)
                diff[f"{name}_sha256"] = {"before": before, "after": shown}
            else:
                diff[name] = {"before": before, "after": value}
            setattr(settings, name, value)
    if diff:
        record("tenant.settings_changed", "tenant", settings.tenant_id, actor=actor, data=diff)
    return settings
