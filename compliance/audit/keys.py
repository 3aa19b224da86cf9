"""The two keys of the tamper-evident audit trail, both kept outside the database.

- The **chain key** (``PORTAL_AUDIT_CHAIN_KEY`` or ``_FILE``): an HMAC key. Every link's hash and
  every write-time tag is made with it, so someone holding only the database can neither recompute
  the chain nor make a row look as if the portal wrote it. Each link names the id of the key that
  made it; after a rotation the old keys stay in ``PORTAL_AUDIT_CHAIN_RETIRED_KEYS`` (comma or
  newline separated) so older links still verify.
- The **signing key** (``PORTAL_AUDIT_SIGNING_KEY`` or ``_FILE``): an Ed25519 private key (PEM) that
  signs checkpoints and evidence-bundle manifests. Auditors hold its public key and check both
  without the portal.

Both are required when ``DJANGO_DEBUG`` is off (settings refuse to start without them). ``make run``
and the tests use fixed development keys that must never protect real evidence.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from functools import lru_cache

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DEVELOPMENT_SIGNING_SEED = hashlib.sha256(b"insecure-development-audit-signing-key").digest()
MINIMUM_KEY_LENGTH = 32


class UnknownKey(LookupError):
    """A link or tag names a chain key the portal does not hold."""


def key_id_for(secret: str) -> str:
    """A key's public name: derived from the key, so a wrong key can never claim a right id."""
    return hashlib.sha256(b"portal-audit-chain-key-id\n" + secret.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ChainKey:
    key_id: str
    secret: bytes

    def mac(self, message: str) -> str:
        return hmac.new(self.secret, message.encode(), hashlib.sha256).hexdigest()


def _split(raw: str) -> list[str]:
    return [part.strip() for part in raw.replace("\n", ",").split(",") if part.strip()]


def validate_chain_key(secret: str, *, name: str) -> None:
    if len(secret) < MINIMUM_KEY_LENGTH:
        raise ImproperlyConfigured(f"{name} must be at least {MINIMUM_KEY_LENGTH} characters long")
    if secret == settings.SECRET_KEY:
        raise ImproperlyConfigured(f"{name} must not be the Django secret key: use a separate key")


@lru_cache(maxsize=8)
def _keyring(current: str, retired: str) -> tuple[ChainKey, dict[str, ChainKey]]:
    validate_chain_key(current, name="PORTAL_AUDIT_CHAIN_KEY")
    keys = {}
    for secret in [current, *_split(retired)]:
        key = ChainKey(key_id=key_id_for(secret), secret=secret.encode())
        keys.setdefault(key.key_id, key)
    return keys[key_id_for(current)], keys


def _configured() -> tuple[str, str]:
    return settings.PORTAL_AUDIT_CHAIN_KEY, settings.PORTAL_AUDIT_CHAIN_RETIRED_KEYS or ""


def current_chain_key() -> ChainKey:
    """The key new links and tags are made with."""
    return _keyring(*_configured())[0]


def chain_key(key_id: str) -> ChainKey:
    """The key with this id, current or retired; ``UnknownKey`` when the portal does not hold it."""
    try:
        return _keyring(*_configured())[1][key_id]
    except KeyError:
        raise UnknownKey(key_id) from None


def known_key_ids() -> list[str]:
    return list(_keyring(*_configured())[1])


# --- the signing key ----------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _load_signing_key(pem: str) -> Ed25519PrivateKey:
    if not pem:
        return Ed25519PrivateKey.from_private_bytes(DEVELOPMENT_SIGNING_SEED)
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(
            "PORTAL_AUDIT_SIGNING_KEY (or _FILE) must be an unencrypted Ed25519 private key in PEM form"
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ImproperlyConfigured("PORTAL_AUDIT_SIGNING_KEY must be an Ed25519 key (not RSA or EC)")
    return key


def signing_key() -> Ed25519PrivateKey:
    return _load_signing_key(settings.PORTAL_AUDIT_SIGNING_KEY or "")


def public_key() -> Ed25519PublicKey:
    return signing_key().public_key()


def public_key_pem() -> str:
    return public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def public_key_fingerprint(key: Ed25519PublicKey | None = None) -> str:
    """SHA-256 of the raw public key, hex: what auditors compare when they pin the key."""
    raw = (key or public_key()).public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


@lru_cache(maxsize=4)
def _retired_public_keys(pems: str) -> dict[str, Ed25519PublicKey]:
    keys = {}
    marker = "-----END PUBLIC KEY-----"
    for block in pems.split(marker):
        if "-----BEGIN PUBLIC KEY-----" not in block:
            continue
        try:
            key = serialization.load_pem_public_key((block.strip() + "\n" + marker + "\n").encode())
        except ValueError as exc:
            raise ImproperlyConfigured("PORTAL_AUDIT_SIGNING_RETIRED_PUBLIC_KEYS must hold PEM public keys") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise ImproperlyConfigured("PORTAL_AUDIT_SIGNING_RETIRED_PUBLIC_KEYS must hold Ed25519 keys")
        keys[public_key_fingerprint(key)] = key
    return keys


def trusted_public_keys() -> dict[str, Ed25519PublicKey]:
    """The keys whose signatures verification accepts, by fingerprint: the current signing key and
    the public keys of retired ones (``PORTAL_AUDIT_SIGNING_RETIRED_PUBLIC_KEYS``)."""
    keys = dict(_retired_public_keys(settings.PORTAL_AUDIT_SIGNING_RETIRED_PUBLIC_KEYS or ""))
    keys[public_key_fingerprint()] = public_key()
    return keys


def sign(message: bytes) -> str:
    return base64.b64encode(signing_key().sign(message)).decode()


def using_development_keys() -> bool:
    return settings.PORTAL_AUDIT_DEVELOPMENT_KEYS


def generate_keys() -> dict[str, str]:
    """A fresh chain key and signing key pair, for ``manage.py generate_audit_keys``."""
    import secrets

    private = Ed25519PrivateKey.generate()
    return {
        "chain_key": secrets.token_urlsafe(48),
        "signing_key_pem": private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
        "public_key_pem": private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode(),
        "fingerprint": public_key_fingerprint(private.public_key()),
    }
