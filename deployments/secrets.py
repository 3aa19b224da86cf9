"""Encryption of secrets the portal must store (chat webhook URLs).

Fernet (AES-128-CBC + HMAC-SHA256) with a key derived from ``PORTAL_SECRETS_KEY`` (defaults to
``DJANGO_SECRET_KEY``). Rotating that key means re-entering the stored webhook URLs.
"""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


def _fernet() -> Fernet:
    material = getattr(settings, "PORTAL_SECRETS_KEY", "") or settings.SECRET_KEY
    digest = hashlib.sha256(b"deployment-portal/secrets/v1:" + material.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt(value: str) -> str:
    return _fernet().encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ValueError("The stored secret cannot be decrypted with the current key; enter it again.") from exc


def hint(url: str) -> str:
    """Enough to recognise a URL without revealing it: the host and its last four characters."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/…{url[-4:]}" if parts.netloc else "…"
