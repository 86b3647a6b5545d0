"""Secrets kept in the database sealed (Fernet) with a key derived from SECRET_KEY, per
purpose: a copy of the database alone does not give them. Rotating SECRET_KEY unseals
nothing sealed before (two-step keys are set up again, IMAP passwords given again)."""

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from flask import current_app


def _fernet(purpose: str) -> Fernet:
    key = hashlib.sha256(f"ledgerdesk-{purpose}:{current_app.secret_key}".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def seal(purpose: str, text: str) -> str:
    return _fernet(purpose).encrypt(text.encode()).decode()


def unseal(purpose: str, sealed: str) -> str | None:
    """The text, or None when it was sealed under another SECRET_KEY."""
    try:
        return _fernet(purpose).decrypt(sealed.encode()).decode()
    except InvalidToken:
        return None
