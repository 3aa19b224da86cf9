"""Thin Celery task: tell the administrators about periodic jobs that stopped running."""

from __future__ import annotations

from celery import shared_task

from .audit import as_system_actor


@shared_task(name="compliance.check_job_heartbeats", acks_late=True)
@as_system_actor
def check_job_heartbeats() -> int:
    from .jobs import alert_late_jobs

    return alert_late_jobs()
