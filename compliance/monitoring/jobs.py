"""Periodic jobs leave a heartbeat; a job that stops running is noticed.

The schedule is code (``CELERY_BEAT_SCHEDULE``). For each task in it, the worker records when it
started and finished and how it ended (Celery's ``task_prerun``/``task_postrun`` signals, so any run
counts: beat's, an administrator's "run now", an eager run in tests). A job whose last successful
run is older than ``PORTAL_JOB_LATE_FACTOR`` (2) times its interval is *late*: the monitoring page
shows it, and ``compliance.check_job_heartbeats`` (itself scheduled) e-mails the administrators once
per late episode (again after a day if it stays late). The beat scheduler marks every job as
expected when it starts, so a job that never ran at all becomes late too.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta

from celery.schedules import crontab
from celery.signals import task_failure, task_postrun, task_prerun
from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from portal.links import absolute_url
from portal.schedule import beat_schedule

from ..people.alerts import alert_administrators
from .models import JobHeartbeat, JobOutcome

logger = logging.getLogger(__name__)

REALERT_AFTER = timedelta(days=1)


def _interval(schedule) -> timedelta | None:
    """How often a beat schedule entry runs (None if it cannot be told)."""
    if isinstance(schedule, int | float):
        return timedelta(seconds=schedule)
    if isinstance(schedule, timedelta):
        return schedule
    if isinstance(schedule, crontab):
        # The longest possible gap between two runs, from the coarsest field that is restricted.
        if len(schedule.day_of_month) < 31 or len(schedule.month_of_year) < 12:
            return timedelta(days=31)
        if len(schedule.day_of_week) < 7:
            return timedelta(days=7)
        if len(schedule.hour) < 24:
            return timedelta(days=1)
        return timedelta(hours=1) if len(schedule.minute) < 60 else timedelta(minutes=1)
    run_every = getattr(schedule, "run_every", None)
    return run_every if isinstance(run_every, timedelta) else None


def scheduled_jobs() -> dict[str, timedelta | None]:
    """Task name → interval, for every task of the code-defined schedule (shortest if listed twice)."""
    jobs: dict[str, timedelta | None] = {}
    for entry in beat_schedule().values():
        interval = _interval(entry.get("schedule"))
        task = entry["task"]
        known = jobs.get(task)
        jobs[task] = interval if known is None else min(known, interval or known)
    return jobs


def late_factor() -> int:
    return settings.PORTAL_JOB_LATE_FACTOR


# --- writes ------------------------------------------------------------------------------------------


def _upsert(task: str, **fields) -> None:
    """Update the heartbeat of ``task`` (creating it on first use); never breaks the task itself."""
    try:
        with transaction.atomic():
            if JobHeartbeat.objects.filter(task=task).update(**fields):
                return
            create = {k: v for k, v in fields.items() if not hasattr(v, "resolve_expression")}
            create.update({k: 1 for k, v in fields.items() if hasattr(v, "resolve_expression")})
            try:
                with transaction.atomic():
                    JobHeartbeat.objects.create(task=task, **create)
            except IntegrityError:  # another worker created it first
                JobHeartbeat.objects.filter(task=task).update(**fields)
    except DatabaseError:
        logger.exception("heartbeat of %s could not be recorded", task)


def job_started(*, task: str, now: datetime | None = None) -> None:
    _upsert(task, last_started_at=now or timezone.now(), last_outcome=JobOutcome.RUNNING)


def job_finished(*, task: str, outcome: str, error: str = "", now: datetime | None = None) -> None:
    now = now or timezone.now()
    fields = {"last_finished_at": now, "last_outcome": outcome, "last_error": error[:200], "runs": F("runs") + 1}
    if outcome == JobOutcome.SUCCESS:
        fields["last_success_at"] = now
    elif outcome == JobOutcome.FAILURE:
        fields["failures"] = F("failures") + 1
    _upsert(task, **fields)


def expect_scheduled_jobs(*, now: datetime | None = None) -> int:
    """Beat started: every job of the schedule is expected from now on (if it was not already)."""
    now = now or timezone.now()
    created = 0
    for task in scheduled_jobs():
        try:
            with transaction.atomic():
                _, was_created = JobHeartbeat.objects.get_or_create(task=task, defaults={"expected_since": now})
        except IntegrityError:
            was_created = False
        created += was_created
    JobHeartbeat.objects.filter(task__in=list(scheduled_jobs()), expected_since__isnull=True).update(
        expected_since=now
    )
    return created


# --- Celery signals ----------------------------------------------------------------------------------

_OUTCOMES = {"SUCCESS": JobOutcome.SUCCESS, "RETRY": JobOutcome.RETRY}


def _task_prerun(sender=None, task=None, **kwargs):
    name = getattr(task or sender, "name", None)
    if name in scheduled_jobs():
        job_started(task=name)


_failed_with: dict[str, str] = {}  # task id → exception class, from task_failure until postrun


def _task_failure(sender=None, task_id=None, exception=None, **kwargs):
    if getattr(sender, "name", None) in scheduled_jobs() and task_id:
        _failed_with[task_id] = type(exception).__name__


def _task_postrun(sender=None, task=None, task_id=None, state=None, **kwargs):
    name = getattr(task or sender, "name", None)
    error = _failed_with.pop(task_id, "") if task_id else ""
    if name not in scheduled_jobs() or state in ("IGNORED", "REJECTED"):
        return
    if state in _OUTCOMES:
        job_finished(task=name, outcome=_OUTCOMES[state])
        return
    # A failure: a worker reported it through task_failure; an eager call is re-raising it right now.
    active = sys.exc_info()[1]
    job_finished(task=name, outcome=JobOutcome.FAILURE, error=error or (type(active).__name__ if active else ""))


def connect() -> None:
    task_prerun.connect(_task_prerun, dispatch_uid="compliance.jobs.prerun", weak=False)
    task_postrun.connect(_task_postrun, dispatch_uid="compliance.jobs.postrun", weak=False)
    task_failure.connect(_task_failure, dispatch_uid="compliance.jobs.failure", weak=False)


# --- reads -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobStatus:
    task: str
    interval: timedelta | None
    heartbeat: JobHeartbeat | None
    late: bool
    since: datetime | None  # what lateness is measured from: the last success, or when it was expected

    @property
    def never_ran(self) -> bool:
        return self.heartbeat is None or self.heartbeat.last_success_at is None

    def late_by(self, now: datetime) -> timedelta | None:
        if not self.late or self.since is None or self.interval is None:
            return None
        return now - self.since - self.interval


def job_statuses(*, now: datetime | None = None) -> list[JobStatus]:
    """Every scheduled job with its heartbeat and whether it is late (one query)."""
    now = now or timezone.now()
    jobs = scheduled_jobs()
    beats = {hb.task: hb for hb in JobHeartbeat.objects.filter(task__in=list(jobs))}
    statuses = []
    for task, interval in sorted(jobs.items()):
        heartbeat = beats.get(task)
        since = heartbeat and (heartbeat.last_success_at or heartbeat.expected_since)
        late = bool(interval and since and now - since > late_factor() * interval)
        statuses.append(JobStatus(task=task, interval=interval, heartbeat=heartbeat, late=late, since=since))
    return statuses


def alert_late_jobs(*, now: datetime | None = None) -> int:
    """E-mail the administrators about each job that is late, once per episode (and again after a
    day). Safe to run twice and in parallel: each alert is claimed with a conditional UPDATE."""
    now = now or timezone.now()
    alerted = []
    for status in job_statuses(now=now):
        heartbeat = status.heartbeat
        if not status.late or heartbeat is None:
            continue
        if heartbeat.alerted_at is not None and heartbeat.alerted_at > status.since and (
            now - heartbeat.alerted_at < REALERT_AFTER
        ):
            continue
        claimed = JobHeartbeat.objects.filter(
            Q(alerted_at=heartbeat.alerted_at) if heartbeat.alerted_at else Q(alerted_at__isnull=True),
            pk=heartbeat.pk,
        ).update(alerted_at=now)
        if claimed:
            alerted.append(status)
    if alerted:
        lines = []
        for status in alerted:
            last = status.heartbeat.last_success_at
            when = f"last succeeded {last:%Y-%m-%d %H:%M} UTC" if last else "has not succeeded since it was scheduled"
            lines.append(f"  - {status.task}: runs every {_words(status.interval)}, {when}")
        alert_administrators(
            f"{len(alerted)} periodic job(s) stopped running",
            "These compliance jobs have not run successfully for more than "
            f"{late_factor()} times their interval:\n\n" + "\n".join(lines)
            + f"\n\nCheck Celery beat and the workers, and the periodic tasks in the admin.\n"
            f"{absolute_url('monitoring:index')}\n",
        )
    return len(alerted)


def _words(interval: timedelta | None) -> str:
    if interval is None:
        return "an unknown interval"
    seconds = int(interval.total_seconds())
    if seconds % 86400 == 0:
        return f"{seconds // 86400} day(s)"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} hour(s)"
    if seconds % 60 == 0:
        return f"{seconds // 60} minute(s)"
    return f"{seconds} seconds"


def _approximately(duration: timedelta | None) -> str:
    if duration is None:
        return ""
    minutes = max(int(duration.total_seconds() // 60), 0)
    if minutes >= 48 * 60:
        return f"{minutes // 1440} days"
    if minutes >= 120:
        return f"{minutes // 60} hours"
    return f"{minutes} min"


def jobs_panel_context(*, user, now: datetime) -> dict:
    statuses = job_statuses(now=now)
    return {
        "jobs": [
            {"status": s, "late_by": _approximately(s.late_by(now)), "interval_words": _words(s.interval)}
            for s in statuses
        ],
        "late_count": sum(s.late for s in statuses),
        "factor": late_factor(),
    }
