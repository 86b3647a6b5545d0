"""Two-step sign-in: after the password, a six-digit code from an authenticator app
(RFC 6238, 30-second steps, one step of drift either way), or one of ten single-use
recovery codes for a lost phone.

The secret is kept encrypted (Fernet, with a key derived from SECRET_KEY: a copy of the
database alone gives no codes; rotating SECRET_KEY means setting it up again). A code is
accepted once: the step it belongs to is remembered, and an older or equal one refused.
Wrong codes count against the sign-in throttles, like wrong passwords. A tenant can
require it of managers and admins (``required_for``): until they have set it up, the
only pages they reach are the one that sets it up and signing out.
"""

import secrets
import time

import pyotp
import qrcode
import qrcode.image.svg
from flask_babel import lazy_gettext as _l

from crm.access import Role
from crm.audit.chain import digest
from crm.audit.service import Actor, record
from crm.auth.models import User
from crm.columns import utcnow
from crm.errors import DomainError
from crm.provisioning.service import tenant_settings
from crm.sealed import seal, unseal
from tenants import current_tenant

SEAL_PURPOSE = "totp"
STEP_SECONDS = 30
RECOVERY_CODES = 10
REQUIRED_ROLES = (Role.MANAGER, Role.ADMIN)


def new_secret() -> str:
    return pyotp.random_base32()


def enabled(user: User) -> bool:
    return user.totp_enabled_at is not None


def required_for(user: User) -> bool:
    """The tenant requires a second step of this user's role."""
    return user.role in REQUIRED_ROLES and tenant_settings().require_two_factor


def setup_uri(user: User, secret: str) -> str:
    """The otpauth:// address an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret).provisioning_uri(
        name=user.email, issuer_name=f"{current_tenant().name} · Ledgerdesk"
    )


def qr_svg(uri: str) -> str:
    """The QR code of ``uri`` as an inline SVG element."""
    image = qrcode.make(uri, image_factory=qrcode.image.svg.SvgPathImage, box_size=8, border=2)
    return image.to_string(encoding="unicode")


def _matching_step(secret: str, code: str, after: int | None) -> int | None:
    """The time step, now or one either side, whose code is ``code``, if later than ``after``."""
    totp = pyotp.TOTP(secret)
    now_step = int(time.time()) // STEP_SECONDS
    for step in (now_step - 1, now_step, now_step + 1):
        if (after is None or step > after) and secrets.compare_digest(totp.at(step * STEP_SECONDS), code):
            return step
    return None


def _clean(code: str | None) -> str:
    """The code without spaces or dashes; ASCII only (codes are), so no "²" reads as a digit."""
    return "".join(ch for ch in (code or "") if ch.isascii() and ch.isalnum()).lower()[:32]


def _new_recovery_codes(user: User) -> list[str]:
    codes = [f"{secrets.token_hex(3)}-{secrets.token_hex(3)}" for _ in range(RECOVERY_CODES)]
    user.recovery_codes = [digest(_clean(code)) for code in codes]
    return codes


def turn_on(user: User, secret: str, code: str, *, actor: Actor) -> list[str]:
    """Turn it on with the secret the user's app was given, once a code from the app
    proves it has it; the recovery codes, to show once."""
    step = _matching_step(secret, _clean(code), None)
    if step is None:
        raise DomainError(
            _l("That code is not right. Check the time on your phone, and enter the newest code."), "code"
        )
    user.totp_secret = seal(SEAL_PURPOSE, secret)
    user.totp_enabled_at = utcnow()
    user.totp_last_step = step
    codes = _new_recovery_codes(user)
    record("user.two_factor_enabled", "user", user.id, actor=actor, data={"recovery_codes": len(codes)})
    return codes


def new_recovery_codes(user: User, *, actor: Actor) -> list[str]:
    """Replace the recovery codes (the old ones stop working); the new ones, to show once."""
    codes = _new_recovery_codes(user)
    record("user.recovery_codes_replaced", "user", user.id, actor=actor, data={"recovery_codes": len(codes)})
    return codes


def turn_off(user: User, *, actor: Actor, by_admin: bool = False) -> None:
    """Turn it off: by the user (not where the tenant requires it of them), or by an admin
    for a user who lost their phone and their recovery codes."""
    if not by_admin and required_for(user):
        raise DomainError(_l("Your organisation requires two-step sign-in for your role."))
    if not enabled(user):
        return
    user.totp_secret = user.totp_enabled_at = user.totp_last_step = user.recovery_codes = None
    record("user.two_factor_disabled", "user", user.id, actor=actor, data={"by_admin": by_admin})


def check(user: User, code: str | None) -> str | None:
    """Whether ``code`` is the user's second step now: "app" (a code from the app, used
    up), "recovery" (a recovery code, used up), or None."""
    cleaned = _clean(code)
    if not enabled(user) or not cleaned:
        return None
    if cleaned.isdigit() and len(cleaned) == 6:
        secret = unseal(SEAL_PURPOSE, user.totp_secret)
        if secret is None:
            return None  # SECRET_KEY changed: only a recovery code, or an admin, helps
        step = _matching_step(secret, cleaned, user.totp_last_step)
        if step is None:
            return None
        user.totp_last_step = step
        return "app"
    wanted = digest(cleaned)
    if wanted in (user.recovery_codes or []):
        user.recovery_codes = [kept for kept in user.recovery_codes if kept != wanted]
        return "recovery"
    return None
