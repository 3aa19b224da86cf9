"""Secrets the portal must store (webhook signing secrets) are encrypted at rest.

Fernet (AES-128-CBC + HMAC-SHA256) with a key derived from ``DJANGO_SECRET_KEY``: a database dump
alone does not reveal them. Rotating ``DJANGO_SECRET_KEY`` makes stored secrets unreadable; set
them again afterwards (the provider reports "secret cannot be decrypted" until then).
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


def _fernet() -> Fernet:
    digest = hashlib.sha256(b"deployment-portal:stored-secrets:" + settings.SECRET_KEY.encode()).digest()
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
