"""Reconciliation runs: the safety net for lost CI events, kept so the monitoring page can show it works."""

from __future__ import annotations

from django.db import models


class ReconciliationRun(models.Model):
    """One run of the periodic reconciliation: what it re-checked, what it opened, what failed.

    The monitoring page shows the last runs, so administrators see that the safety net for lost
    events is working (and which repositories a CI system could not be asked about).
    """

    started_at = models.DateTimeField(db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    opened = models.PositiveIntegerField(default=0, help_text="Violations opened by this run.")
    sources = models.JSONField(
        default=dict, blank=True,
        help_text="Per CI integration: {label, configured, recorded (deployments whose event was missed)}.",
    )
    failed_repositories = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True, default="", help_text="Why the run (or a CI integration's part) failed.")
    result = models.JSONField(default=dict, blank=True)
    alerted_at = models.DateTimeField(
        null=True, blank=True, help_text="When administrators were alerted that reconciliation keeps failing."
    )

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"Reconciliation at {self.started_at:%Y-%m-%d %H:%M}"

    @property
    def ok(self) -> bool:
        return self.finished_at is not None and not self.error and not self.failed_repositories


# Notification configuration and log live in their own module; imported here so Django registers them.
