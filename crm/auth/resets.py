"""Forgotten passwords: a single-use link, working for ``RESET_MINUTES`` after it is
sent, to choose a new password.

Asked for on the sign-in page, the answer is the same whether or not an account has the
address (and whether a link went out), so the page tells a stranger nothing. An admin
can send one to a user. The email is written with a slot where the link goes; the link's
token is made only when the email is handed to the mail server (``link_for``, called by
the sending job), and only its SHA-256 is kept: nobody reading the outbox, or this
table, can use it. Using it sets the password, ends every session of the user, and
spends every other link they were sent.
"""

import secrets
from datetime import datetime, timedelta

from flask import render_template
from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select, update

from crm.audit.chain import digest
from crm.audit.service import Actor, record
from crm.auth.models import PasswordReset, User, new_session_token
from crm.auth.service import check_password, hash_password, user_by_email
from crm.auth.sessions import EndReason, end_sessions
from crm.columns import utcnow
from crm.errors import DomainError
from crm.extensions import db
from crm.mail_addresses import normalise_email
from crm.notify.models import RESET_LINK_SLOT, Automatic, OutboxMessage
from crm.notify.service import queue_email
from crm.tickets.links import external_url
from tenants import current_tenant

RESET_MINUTES = 30
# Links sent to one account in an hour, however many times the form is sent for it.
PER_ACCOUNT_PER_HOUR = 3


def request_reset(email: str, *, ip: str | None) -> None:
    """The sign-in page's "forgot password": a link for the account with ``email``, if it
    may sign in and has not had too many this hour. Audited either way; says nothing."""
    email = normalise_email(email or "")
    user = user_by_email(email) if email else None
    anonymous = Actor("anonymous", None, "anonymous", ip)
    refused = _refusal(user, utcnow())
    if refused:
        subject = ("user", user.id) if user is not None else ("login", None)
        record(
            "auth.password_reset_refused",
            *subject,
            actor=anonymous,
            data={"email_sha256": digest(email), "reason": refused},
        )
        return
    _send(user, requested_by=None, actor=anonymous)


def send_reset(user: User, *, by: User, actor: Actor) -> None:
    """An admin sends ``user`` a link (a forgotten password, a first sign-in)."""
    if not user.is_active:
        raise DomainError(_l("This account cannot sign in now, so it cannot be sent a link."))
    _send(user, requested_by=by, actor=actor)


def _refusal(user: User | None, now: datetime) -> str | None:
    if user is None:
        return "no_account"
    if not user.is_active:
        return "inactive"
    sent = db.session.scalar(
        select(func.count())
        .select_from(PasswordReset)
        .where(PasswordReset.user_id == user.id, PasswordReset.created_at > now - timedelta(hours=1))
    )
    return "too_many" if sent >= PER_ACCOUNT_PER_HOUR else None


def _send(user: User, *, requested_by: User | None, actor: Actor) -> None:
    reset = PasswordReset(user_id=user.id, requested_by_id=requested_by.id if requested_by else None)
    db.session.add(reset)
    db.session.flush()
    locale = user.locale or current_tenant().locale or "en"
    with force_locale(locale):
        subject = _l("Choose a new password for %(desk)s", desk=current_tenant().name)
        body = render_template(
            "emails/password_reset.txt",
            user=user,
            link=RESET_LINK_SLOT,
            minutes=RESET_MINUTES,
            by_admin=requested_by is not None,
            tenant=current_tenant(),
        )
        subject = str(subject)
    reset.outbox_message_id = queue_email(
        to=user.email,
        subject=subject,
        body=body,
        locale=locale,
        ticket_id=None,
        actor=actor,
        automatic=Automatic.GENERATED,
    )
    record(
        "auth.password_reset_sent",
        "user",
        user.id,
        actor=actor,
        data={"reset_id": reset.id, "by_admin": requested_by is not None},
    )


def link_for(message: OutboxMessage) -> str | None:
    """The reset link to put in ``message`` as it is sent: a new token, working for
    ``RESET_MINUTES`` from now (a message sent again gets a new one, and the old stops).
    None for any other message, whatever its text says (a name typed on a public form)."""
    reset = db.session.scalars(
        select(PasswordReset).where(PasswordReset.outbox_message_id == message.id)
    ).one_or_none()
    if reset is None:
        return None
    token = secrets.token_urlsafe(32)
    reset.token_digest = digest(token)
    reset.expires_at = utcnow() + timedelta(minutes=RESET_MINUTES)
    return external_url("auth.reset_password", token=token)


def usable_reset(token: str) -> PasswordReset | None:
    """The reset this token opens, if it is unused, in time, and its account may sign in."""
    if not token or len(token) > 100:
        return None
    reset = db.session.scalars(
        select(PasswordReset).where(PasswordReset.token_digest == digest(token))
    ).one_or_none()
    if reset is None or reset.used_at is not None or reset.expires_at is None or reset.expires_at <= utcnow():
        return None
    user = db.session.get(User, reset.user_id)
    return reset if user is not None and user.is_active else None


def reset_password(reset: PasswordReset, new_password: str, *, ip: str | None) -> User:
    """Set the password the link's owner chose; every session of theirs ends, and every
    link they were sent stops working."""
    user = db.session.get(User, reset.user_id)
    check_password(new_password, email=user.email, display_name=user.display_name, field="new_password")
    now = utcnow()
    user.password_hash = hash_password(new_password)
    user.session_token = new_session_token()
    ended = end_sessions(user, EndReason.PASSWORD)
    db.session.execute(
        update(PasswordReset)
        .where(PasswordReset.user_id == user.id, PasswordReset.used_at.is_(None))
        .values(used_at=now)
    )
    record(
        "user.password_reset",
        "user",
        user.id,
        actor=Actor("user", str(user.id), user.email, ip),
        data={"reset_id": reset.id, "sessions_ended": ended},
    )
    return user
