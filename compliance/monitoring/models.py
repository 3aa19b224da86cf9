"""Operations evidence: when each periodic job last ran."""

from __future__ import annotations

from django.db import models

__all__ = ["JobHeartbeat", "JobOutcome"]


class JobOutcome(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCESS = "success", "Succeeded"
    FAILURE = "failure", "Failed"
    RETRY = "retry", "Retrying"


class JobHeartbeat(models.Model):
    """One row per periodic job of the code-defined schedule (``CELERY_BEAT_SCHEDULE``).

    Written by the worker when a scheduled task starts and finishes (Celery signals), and created
    by the beat scheduler when it starts (``expected_since``), so a job that never ran is noticed
    too. ``alerted_at`` is when administrators were last told the job is late.
    """

    task = models.CharField(max_length=200, unique=True)
    expected_since = models.DateTimeField(null=True, blank=True)
    last_started_at = models.DateTimeField(null=True, blank=True)
    last_finished_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_outcome = models.CharField(max_length=16, choices=JobOutcome.choices, blank=True)
    # The exception's class name only: messages can carry URLs or tokens.
    last_error = models.CharField(max_length=200, blank=True)
    runs = models.PositiveBigIntegerField(default=0)
    failures = models.PositiveBigIntegerField(default=0)
    alerted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["task"]

    def __str__(self) -> str:
        return f"{self.task} ({self.get_last_outcome_display() or 'never ran'})"
