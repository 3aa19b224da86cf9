"""Operations evidence: when each periodic job last ran, and every change (or refused change) to
privileged access."""

from __future__ import annotations

from django.conf import settings
from django.db import models

__all__ = ["JobHeartbeat", "JobOutcome", "PrivilegeChange", "PrivilegeChangeKind"]


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


class PrivilegeChangeKind(models.TextChoices):
    ROLE_ADDED = "role_added", "Role granted"
    ROLE_REMOVED = "role_removed", "Role removed"
    PERMISSION_GRANTED = "permission_granted", "Permission granted"
    PERMISSION_REVOKED = "permission_revoked", "Permission revoked"
    FLAG_CHANGED = "flag_changed", "Account flag changed"
    REFUSED = "refused", "Change refused"


class PrivilegeChange(models.Model):
    """A change to who may administer or approve — or an attempt that was refused.

    Written inside the transaction of the change (role membership through ``RoleAssignment``
    tracking, approval permissions through the object-permission models that ``deployments``
    registers, superuser and staff flags through the user admin); administrators are e-mailed
    after commit and the monitoring page lists the recent ones. Evidence: read-only in the admin.
    """

    created_at = models.DateTimeField(db_index=True)
    kind = models.CharField(max_length=24, choices=PrivilegeChangeKind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    subject = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    group = models.CharField(max_length=150, blank=True, help_text="The role or group concerned.")
    privilege = models.CharField(max_length=200, help_text="What changed, in words (role, permission, flag).")
    target = models.CharField(max_length=200, blank=True, help_text="Where it applies (an environment), if anywhere.")
    code = models.CharField(max_length=64, blank=True, help_text="The rule that refused it, for refusals.")
    message = models.TextField(blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["kind", "-created_at"], name="privchange_kind_created")]

    def __str__(self) -> str:
        who = self.subject or self.group or "?"
        return f"{self.get_kind_display()}: {self.privilege} for {who}"
