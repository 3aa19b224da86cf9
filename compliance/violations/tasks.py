"""Thin Celery task: escalate violations nobody acknowledged in time (run as the system actor)."""

from __future__ import annotations

from celery import shared_task

from ..people.identity import as_system_actor, system_actor
from .services import escalate_overdue_violations as escalate


@shared_task(name="compliance.escalate_overdue_violations", acks_late=True)
@as_system_actor
def escalate_overdue_violations() -> int:
    return escalate(actor=system_actor())
