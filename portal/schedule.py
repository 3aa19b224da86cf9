"""The periodic-job schedule: the portal's own jobs (``CELERY_BEAT_SCHEDULE`` in settings) and the
jobs integrations register from their ``AppConfig.ready()``. Beat installs exactly this schedule
(``compliance`` re-asserts it at every start) and the job heartbeats judge lateness against it."""

from __future__ import annotations

from django.conf import settings

_registered: dict[str, dict] = {}


def register_periodic_job(key: str, *, task: str, schedule) -> None:
    """Run the Celery task named ``task`` every ``schedule`` (seconds, a timedelta or a crontab)."""
    _registered[key] = {"task": task, "schedule": schedule}


def beat_schedule() -> dict[str, dict]:
    return {**settings.CELERY_BEAT_SCHEDULE, **_registered}
