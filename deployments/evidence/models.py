"""The evidence package's data: after-the-fact reviews of emergency changes and drawn samples."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from deployments.choices import EmergencyReviewOutcome
from deployments.gate.models import DeploymentRequest


class EmergencyReview(models.Model):
    """The review of an emergency change after it went through, by an approver who did not approve it.

    One per request (the first review is the evidence; it never changes). ``due_at`` is copied from
    the rule in force when the review was recorded, so the evidence shows whether it was on time.
    """

    request = models.OneToOneField(DeploymentRequest, on_delete=models.PROTECT, related_name="emergency_review")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    outcome = models.CharField(max_length=16, choices=EmergencyReviewOutcome.choices)
    notes = models.TextField()
    due_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(notes=""),
                name="emergency_review_needs_notes",
                violation_error_message="An emergency review needs notes.",
            ),
        ]

    def __str__(self) -> str:
        return f"Review of emergency #{self.request_id}: {self.get_outcome_display()}"

    @property
    def on_time(self) -> bool:
        return self.created_at <= self.due_at


class EvidenceSample(models.Model):
    """A random sample of changes an auditor drew, with everything needed to draw it again.

    The population is every authorized change (approved, deploying, deployed or failed) created in
    the period and matching the filters, ordered by id; ``population_sha256`` fingerprints it.
    ``random.Random(seed).sample(population, size)`` picks ``request_ids``: the same seed over the
    same population gives the same sample.
    """

    drawn_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    drawn_at = models.DateTimeField(auto_now_add=True)
    date_from = models.DateField()
    date_to = models.DateField()
    service = models.CharField(max_length=100, blank=True, default="")
    environment = models.CharField(max_length=100, blank=True, default="")
    emergency_only = models.BooleanField(default=False)
    size = models.PositiveIntegerField()
    seed = models.CharField(max_length=64)
    population_count = models.PositiveIntegerField()
    population_sha256 = models.CharField(max_length=64)
    request_ids = models.JSONField(default=list)

    class Meta:
        ordering = ["-drawn_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(date_to__gte=F("date_from")),
                name="evidence_sample_period_ordered",
                violation_error_message="A sample's period must end on or after its start.",
            ),
            models.CheckConstraint(
                condition=Q(size__gte=1),
                name="evidence_sample_size_positive",
                violation_error_message="A sample has at least one change.",
            ),
        ]

    def __str__(self) -> str:
        return f"Sample #{self.pk}: {len(self.request_ids)} of {self.population_count} changes"


class FailedChangeFlag(models.Model):
    """A deployment that went out but was traced to an incident: a failed change (DORA).

    Append-only evidence: a flag is never edited or withdrawn. A deployment may be flagged more than
    once (each incident traced to it); the first flag sets ``DeploymentRequest.failed_change_at``,
    which the change failure rate counts once.
    """

    execution = models.ForeignKey(
        "deployments.Execution", on_delete=models.PROTECT, related_name="failed_change_flags")
    request = models.ForeignKey(DeploymentRequest, on_delete=models.PROTECT, related_name="failed_change_flags")
    flagged_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reason = models.TextField(help_text="The incident traced to this deployment (a reference and what happened).")
    created_at = models.DateTimeField(auto_now_add=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(reason=""),
                name="failed_change_flag_needs_reason",
                violation_error_message="A failed-change flag needs a reason.",
            ),
        ]

    def __str__(self) -> str:
        return f"Deployment #{self.request_id} flagged as a failed change"
