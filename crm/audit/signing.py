"""The deployment's signing key (``crm.config.signing_key``) as checkpoints and bundles
use it, and the public keys anyone can check them against."""

import base64
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from flask import current_app

from crm.audit import verifier
from crm.audit.chain import canonical_json


@dataclass(frozen=True)
class SigningKey:
    private: Ed25519PrivateKey
    old_public_keys: tuple[str, ...]

    @property
    def public_key(self) -> str:
        """Base64 of the 32 raw public-key bytes."""
        raw = self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return base64.b64encode(raw).decode()

    @property
    def key_id(self) -> str:
        return verifier.key_id(base64.b64decode(self.public_key))

    def sign(self, message: bytes) -> str:
        return base64.b64encode(self.private.sign(message)).decode()

    def published(self) -> dict:
        """The current key and every older one, as /.well-known/ledgerdesk-keys.json serves them."""
        keys = [self.public_key, *(key for key in self.old_public_keys if key != self.public_key)]
        return {
            "keys": [
                {
                    "algorithm": "Ed25519",
                    "current": key == self.public_key,
                    "key_id": verifier.key_id(base64.b64decode(key)),
                    "public_key": key,
                }
                for key in keys
            ]
        }

    def keys_document(self) -> bytes:
        return canonical_json(self.published())

    def known(self) -> dict[str, str]:
        """key id -> public key, for checking signatures made with any published key."""
        return {entry["key_id"]: entry["public_key"] for entry in self.published()["keys"]}


def current_key() -> SigningKey:
    config = current_app.config
    return SigningKey(config["AUDIT_SIGNING_KEY"], tuple(config.get("AUDIT_OLD_PUBLIC_KEYS", ())))
