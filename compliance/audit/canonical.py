"""The canonical form of a chained row: the text its digest is taken over.

Sorted keys, no whitespace, UTF-8, datetimes in UTC with microseconds: the same row gives the same
text on SQLite and PostgreSQL, and when read back in another process.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from uuid import UUID

from django.db import models
from django.utils import timezone

DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def default_canonical(instance: models.Model) -> dict:
    """Every concrete field by its column attribute name (``actor_id``, not the related object)."""
    return {f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields}


def _normalize(value):
    if isinstance(value, datetime):
        if timezone.is_naive(value):
            value = timezone.make_aware(value, UTC)
        return value.astimezone(UTC).strftime(DATETIME_FORMAT)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {str(k): _normalize(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_normalize(v) for v in value]
    return value


def canonical_json(data: dict) -> str:
    return json.dumps(_normalize(data), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(text: str) -> str:
    """SHA-256 of a row's canonical text, hex."""
    return hashlib.sha256(text.encode()).hexdigest()
