"""Periodic jobs of privileged access (thin: each calls one service as the system actor)."""

from __future__ import annotations

from celery import shared_task

from . import access_changes
from .identity import as_system_actor


@shared_task(name="compliance.expire_access_grants", acks_late=True)
@as_system_actor
def expire_access_grants() -> dict[str, int]:
    """Revoke time-bound grants that have expired and remind before expiry (safe to run twice)."""
    return access_changes.expire_access_grants()
