"""Secrets the portal must store (CI webhook signing secrets, chat webhook URLs) are encrypted at rest.

Fernet (AES-128-CBC + HMAC-SHA256) with a key derived from ``PORTAL_SECRETS_KEY`` (defaults to
``DJANGO_SECRET_KEY``): a database dump alone does not reveal them. Rotating that key makes stored
secrets unreadable; set them again afterwards (the provider reports "secret cannot be decrypted").
"""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


def _fernet() -> Fernet:
    material = settings.PORTAL_SECRETS_KEY or settings.SECRET_KEY
    digest = hashlib.sha256(b"deployment-portal/secrets/v1:" + material.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt_secret(value: str) -> str:
    return _fernet().encrypt(value.encode()).decode() if value else ""


def decrypt_secret(ciphertext: str) -> str | None:
    """The clear secret, ``""`` when none is stored, ``None`` when it cannot be decrypted."""
    if not ciphertext:
        return ""
    try:
        return _fernet().decrypt(ciphertext.encode()).decode()
    except (InvalidToken, ValueError):
        return None


def readable_secret(ciphertext: str) -> str:
    """Like ``decrypt_secret`` but raising ``ValueError`` with a message people can act on."""
    clear = decrypt_secret(ciphertext)
    if clear is None:
        raise ValueError("The stored secret cannot be decrypted with the current key; enter it again.")
    return clear


def hint(url: str) -> str:
    """Enough to recognise a URL without revealing it: the host and its last four characters."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/…{url[-4:]}" if parts.netloc else "…"
