"""Refund policy versions: drafting, publishing, what is in force when, and rendering.

A version is a draft until published. Publishing fixes its content for good, records its
SHA-256 (of the canonical JSON of ``{"texts": …, "terms": …}``, as in the audit chain's
format) and the moment it takes effect, which may be later; the version in force at any
instant is the published one with the latest ``effective_from`` not after it.
"""

import difflib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

import nh3
from flask_babel import lazy_gettext as _l
from markdown_it import MarkdownIt
from markupsafe import Markup
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm.audit.chain import canonical_text, digest, format_instant
from crm.audit.service import Actor, record
from crm.columns import utcnow
from crm.errors import Conflict, DomainError, NotFound
from crm.extensions import db, insert_or_ignore
from crm.i18n import LOCALE_NAMES
from crm.policies.models import PolicyStatus, PolicyVersion
from crm.policies.terms import Terms
from tenants import cache as tenant_cache
from tenants import current_tenant_id

LOCALES = ("en", "zh_CN")
# What a tenant's first draft says until someone writes the policy; never publishable.
STARTER_TEXTS = {
    "en": "# Refund policy\n\nDescribe when customers get their money back, and how.\n",
    "zh_CN": "# 退款政策\n\n请说明客户在什么情况下可以退款，以及如何退款。\n",
}
MAX_TEXT = 100_000
MAX_FILE_BYTES = 1024 * 1024
# Publishing "now" may be a little in the past by the time it lands; more is refused, as it
# would change what was in force for requests already received.
PAST_TOLERANCE = timedelta(minutes=5)
FILE_KEYS = {"texts", "terms"}

_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False})
ALLOWED_TAGS = {
    "p", "br", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "strong", "em", "code",
    "pre", "blockquote", "hr", "a", "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip


def render(text: str) -> Markup:
    """Markdown to HTML that is safe to show: CommonMark with raw HTML off, then an
    allow-list sanitiser (links keep only http, https and mailto)."""
    html = _markdown.render(text or "")
    clean = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes={"a": {"href", "title"}},
        url_schemes={"http", "https", "mailto"},
        link_rel="nofollow noopener",
    )
    return Markup(clean)  # sanitised just above


def content_hash(texts: dict[str, str], terms: dict) -> str:
    return digest(canonical_text({"texts": texts, "terms": terms}))


# --- reading ---------------------------------------------------------------------------


def versions() -> list[PolicyVersion]:
    return list(db.session.scalars(select(PolicyVersion).order_by(PolicyVersion.number.desc())))


def by_number(number: int, *, published_only: bool = False) -> PolicyVersion | None:
    query = select(PolicyVersion).where(PolicyVersion.number == number)
    if published_only:
        query = query.where(PolicyVersion.status == PolicyStatus.PUBLISHED)
    return db.session.scalars(query).one_or_none()


def version_by_id(version_id: int | None) -> PolicyVersion | None:
    return db.session.get(PolicyVersion, version_id) if version_id is not None else None


def _in_force(entity, at: datetime | None):
    return (
        select(entity)
        .where(
            PolicyVersion.status == PolicyStatus.PUBLISHED, PolicyVersion.effective_from <= (at or utcnow())
        )
        .order_by(PolicyVersion.effective_from.desc(), PolicyVersion.number.desc())
        .limit(1)
    )


def in_force(at: datetime | None = None) -> PolicyVersion | None:
    """The published version in force at ``at`` (now by default)."""
    return db.session.scalars(_in_force(PolicyVersion, at)).one_or_none()


def in_force_id() -> int | None:
    """The id of the version in force now, which a new ticket pins (without loading it),
    from this process's copy of when each published version takes effect when it has
    one (``tenants.cache``): every submission of the form asks."""
    session = db.session()
    schedule = tenant_cache.cached(
        db.engine, ("policy_schedule", current_tenant_id()), _schedule, session=session
    )
    now = utcnow()
    return next((version_id for version_id, effective_from in schedule if effective_from <= now), None)


def _schedule() -> tuple[tuple[int, datetime], ...]:
    """(id, effective_from) of each published version, in the order ``_in_force`` prefers."""
    query = (
        select(PolicyVersion.id, PolicyVersion.effective_from)
        .where(PolicyVersion.status == PolicyStatus.PUBLISHED)
        .order_by(PolicyVersion.effective_from.desc(), PolicyVersion.number.desc())
    )
    return tuple((version_id, effective_from) for version_id, effective_from in db.session.execute(query))


def install(session_class: type[Session]) -> None:
    """A process keeps when each version takes effect while it hears of every change."""
    tenant_cache.watch(session_class, PolicyVersion)


@dataclass(frozen=True)
class Published:
    version: PolicyVersion
    standing: str  # "in_force", "superseded" or "scheduled"


def published() -> list[PolicyVersion]:
    """Every published version, the latest to take effect first."""
    query = (
        select(PolicyVersion)
        .where(PolicyVersion.status == PolicyStatus.PUBLISHED)
        .order_by(PolicyVersion.effective_from.desc(), PolicyVersion.number.desc())
    )
    return list(db.session.scalars(query))


def published_history() -> list[Published]:
    """Every published version, newest first, with where it stands now."""
    current = in_force()
    now = utcnow()
    return [
        Published(
            version,
            "in_force"
            if current is not None and version.id == current.id
            else ("scheduled" if version.effective_from > now else "superseded"),
        )
        for version in published()
    ]


def text_for(version: PolicyVersion, locale: str) -> tuple[str, str]:
    """The version's text in ``locale``, or in the other language when it has none;
    with the locale actually used."""
    for candidate in (locale, *LOCALES):
        if version.texts.get(candidate):
            return version.texts[candidate], candidate
    return "", locale


def terms_of(version: PolicyVersion) -> Terms:
    return Terms.from_json(version.terms)


# --- checking what people send ----------------------------------------------------------


def check_texts(texts: object) -> dict[str, str]:
    if not isinstance(texts, dict):
        raise DomainError(_l('"texts" must map locales (en, zh_CN) to Markdown.'), "texts")
    unknown = sorted(set(texts) - set(LOCALES), key=str)
    if unknown:
        raise DomainError(
            _l("Unknown locale %(locale)s in texts; use en or zh_CN.", locale=unknown[0]), "texts"
        )
    checked = {}
    for locale in LOCALES:
        text = texts.get(locale) or ""
        if not isinstance(text, str):
            raise DomainError(
                _l("The %(locale)s text must be Markdown text.", locale=locale), f"text_{locale}"
            )
        if len(text) > MAX_TEXT:
            raise DomainError(_l("Use at most %(n)d characters.", n=MAX_TEXT), f"text_{locale}")
        if text.strip():
            checked[locale] = text.replace("\r\n", "\n").strip() + "\n"
    if not checked:
        raise DomainError(_l("Write the policy's text in at least one language."), "text_en")
    return checked


def read_file(data: bytes) -> tuple[dict[str, str], dict]:
    """A policy file: ``{"texts": {...}, "terms": {...}}`` (docs/refund-policies.md)."""
    if len(data) > MAX_FILE_BYTES:
        raise DomainError(_l("The policy file is larger than 1 MB."), "file")
    try:
        content = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DomainError(
            _l("The policy file is not valid JSON: %(error)s", error=str(error)), "file"
        ) from None
    if not isinstance(content, dict):
        raise DomainError(_l('The policy file must be a JSON object with "texts" and "terms".'), "file")
    unknown = sorted(set(content) - FILE_KEYS)
    if unknown:
        raise DomainError(_l("Unknown key %(key)s in the policy file.", key=unknown[0]), "file")
    missing = sorted(FILE_KEYS - set(content))
    if missing:
        raise DomainError(_l("The policy file has no %(key)s.", key=missing[0]), "file")
    return content["texts"], content["terms"]


# --- changing ----------------------------------------------------------------------------


def _checked(texts: object, terms: object) -> tuple[dict[str, str], dict]:
    return check_texts(texts), Terms.from_json(terms).to_json()


def create_draft(texts: object, terms: object, *, actor: Actor, user_id: int | None = None) -> PolicyVersion:
    """A new draft with the next version number."""
    texts, terms = _checked(texts, terms)
    number = (db.session.scalar(select(func.max(PolicyVersion.number))) or 0) + 1
    now = utcnow()
    row = {
        "number": number,
        "status": PolicyStatus.DRAFT,
        "texts": texts,
        "terms": terms,
        "created_by_id": user_id,
        "created_at": now,
        "updated_at": now,
    }
    if not insert_or_ignore(PolicyVersion, row):
        raise Conflict(_l("Someone else created a version at the same time. Please try again."), "number")
    version = by_number(number)
    record(
        "policy.draft_created",
        "policy_version",
        version.id,
        actor=actor,
        data={"number": number, "draft_sha256": content_hash(texts, terms)},
    )
    return version


def _draft(version: PolicyVersion) -> PolicyVersion:
    if version.is_published:
        raise Conflict(
            _l("Version %(n)d is published and can no longer change. Start a new draft.", n=version.number),
            "number",
        )
    return version


def update_draft(version: PolicyVersion, texts: object, terms: object, *, actor: Actor) -> bool:
    """Change a draft's text and terms; False if nothing changed."""
    _draft(version)
    texts, terms = _checked(texts, terms)
    if content_hash(texts, terms) == content_hash(version.texts, version.terms):
        return False
    version.texts, version.terms, version.updated_at = texts, terms, utcnow()
    record(
        "policy.draft_updated",
        "policy_version",
        version.id,
        actor=actor,
        data={"number": version.number, "draft_sha256": content_hash(texts, terms)},
    )
    return True


def publish(
    version: PolicyVersion,
    *,
    actor: Actor,
    effective_from: datetime | None = None,
    user_id: int | None = None,
) -> PolicyVersion:
    """Fix the draft for good and put it in force at ``effective_from`` (now by default).
    The version in force until then is superseded at that moment; both are audited."""
    _draft(version)
    now = utcnow()
    effective_from = effective_from or now
    if effective_from.tzinfo is None:
        raise DomainError(_l("Give the effective time with its time zone."), "effective_from")
    if effective_from < now - PAST_TOLERANCE:
        raise DomainError(
            _l(
                "A version cannot take effect in the past: that would change what earlier "
                "requests were shown."
            ),
            "effective_from",
        )
    terms_of(version)  # a draft stored before a validation rule changed is checked again
    for locale, text in version.texts.items():
        if text == STARTER_TEXTS.get(locale):
            raise DomainError(
                _l(
                    "The %(language)s text is still the starter placeholder: write the policy, or clear it.",
                    language=LOCALE_NAMES.get(locale, locale),
                ),
                f"text_{locale}",
            )
    previous = in_force(effective_from)
    following = _next_scheduled(effective_from)
    version.status = PolicyStatus.PUBLISHED
    version.sha256 = content_hash(version.texts, version.terms)
    version.effective_from = effective_from
    version.published_at = now
    version.published_by_id = user_id
    version.updated_at = now
    record(
        "policy.published",
        "policy_version",
        version.id,
        actor=actor,
        data={
            "number": version.number,
            "sha256": version.sha256,
            "effective_from": format_instant(effective_from),
        },
    )
    if previous is not None:
        _record_superseded(previous, by=version, at=effective_from, actor=actor)
    if following is not None:
        # Taking effect before a version already scheduled: it is superseded when that starts.
        _record_superseded(version, by=following, at=following.effective_from, actor=actor)
    return version


def _record_superseded(old: PolicyVersion, *, by: PolicyVersion, at: datetime, actor: Actor) -> None:
    record(
        "policy.superseded",
        "policy_version",
        old.id,
        actor=actor,
        data={"number": old.number, "sha256": old.sha256, "by_number": by.number, "at": format_instant(at)},
    )


def _next_scheduled(after: datetime) -> PolicyVersion | None:
    """The published version that takes effect first after ``after``, if any."""
    return db.session.scalars(
        select(PolicyVersion)
        .where(PolicyVersion.status == PolicyStatus.PUBLISHED, PolicyVersion.effective_from > after)
        .order_by(PolicyVersion.effective_from, PolicyVersion.number)
        .limit(1)
    ).one_or_none()


def require(number: int, *, published_only: bool = False) -> PolicyVersion:
    version = by_number(number, published_only=published_only)
    if version is None:
        raise NotFound(_l("There is no policy version %(n)d.", n=number), "number")
    return version


# --- comparing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DiffLine:
    kind: str  # "same", "added", "removed", "section" (text: a locale, or "terms")
    text: str


def diff(old: PolicyVersion, new: PolicyVersion) -> list[DiffLine]:
    """What changed from ``old`` to ``new``: each language's text, then the terms."""

    def sections(version: PolicyVersion) -> dict[str, list[str]]:
        found = {locale: version.texts.get(locale, "").splitlines() for locale in LOCALES}
        found["terms"] = json.dumps(version.terms, indent=2, ensure_ascii=False, sort_keys=True).splitlines()
        return found

    before, after = sections(old), sections(new)
    lines: list[DiffLine] = []
    for name in before:
        lines.append(DiffLine("section", name))
        for line in difflib.ndiff(before[name], after[name]):
            marker, text = line[:2], line[2:]
            if marker == "? ":
                continue
            lines.append(DiffLine({"+ ": "added", "- ": "removed"}.get(marker, "same"), text))
    return lines
