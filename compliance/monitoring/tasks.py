"""Thin Celery task: tell the administrators about periodic jobs that stopped running."""

from __future__ import annotations

from celery import shared_task

from ..people.identity import as_system_actor
from .jobs import alert_late_jobs


@shared_task(name="compliance.check_job_heartbeats", acks_late=True)
@as_system_actor
def check_job_heartbeats() -> int:
    return alert_late_jobs()
