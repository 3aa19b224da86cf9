"""Violations of the deployment policy and every step of their investigation."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

__all__ = [
    "CLOSED_VIOLATION_STATUSES",
    "Severity",
    "Violation",
    "ViolationEvent",
    "ViolationEventKind",
    "ViolationKind",
    "ViolationStatus",
]


class ViolationKind(models.TextChoices):
    UNAUTHORIZED_DEPLOYMENT = "unauthorized_deployment", "Deployment without an approved request"
    SHA_MISMATCH = "sha_mismatch", "Deployed sha differs from the approved sha"
    STALE_APPROVAL = "stale_approval", "Deployment after the approval expired"
    FREEZE_BREACH = "freeze_breach", "Deployment during a freeze without emergency approval"
    UNAUTHORIZED_PUSH = "unauthorized_push", "Push to a protected branch by someone not authorized"
    BRANCH_PROTECTION_DRIFT = "branch_protection_drift", "Branch protection drifted from the policy"
    INELIGIBLE_DECISION = "ineligible_decision", "Decision by an ineligible person"
    LAPSED_TRAINING = "lapsed_training", "Person with lapsed training still acting"
    EXECUTION_CONFLICT = "execution_conflict", "CI run re-reported with another sha"
    EMERGENCY_REVIEW_MISSED = "emergency_review_missed", "Emergency change not reviewed in time"


class Severity(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


class ViolationStatus(models.TextChoices):
    OPEN = "open", "Open"
    INVESTIGATING = "investigating", "Investigating"
    RESOLVED = "resolved", "Resolved"
    RISK_ACCEPTED = "risk_accepted", "Risk accepted"


CLOSED_VIOLATION_STATUSES = (ViolationStatus.RESOLVED, ViolationStatus.RISK_ACCEPTED)


class Violation(models.Model):
    """A breach of the deployment policy, detected from events or by reconciliation, and its handling.

    ``dedup_key`` names the event (e.g. the execution) so the same event never opens two violations.
    The workflow is open → investigating → resolved | risk accepted; every step has notes and is
    kept as a ``ViolationEvent``.
    """

    kind = models.CharField(max_length=32, choices=ViolationKind.choices, db_index=True)
    severity = models.CharField(max_length=16, choices=Severity.choices)
    title = models.CharField(max_length=300)
    subject = models.CharField(
        max_length=300, blank=True, default="", help_text="What it is about, e.g. service/environment or repository."
    )
    evidence = models.JSONField(default=dict, blank=True, help_text="A snapshot of the facts at detection.")
    evidence_links = models.JSONField(default=list, blank=True, help_text='[{"label": ..., "url": ...}]')
    dedup_key = models.CharField(max_length=255, unique=True)
    source = models.CharField(max_length=32, default="event", help_text="event, reconciliation, github, ...")
    detected_at = models.DateTimeField(db_index=True)
    ack_deadline = models.DateTimeField()
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="owned_violations"
    )
    status = models.CharField(
        max_length=16, choices=ViolationStatus.choices, default=ViolationStatus.OPEN, db_index=True
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    resolution_notes = models.TextField(blank=True, default="")
    escalated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-detected_at", "-id"]
        indexes = [models.Index(fields=["status", "ack_deadline"], name="violation_status_deadline")]
        constraints = [
            models.CheckConstraint(
                condition=Q(ack_deadline__gte=F("detected_at")),
                name="violation_deadline_after_detection",
                violation_error_message="The acknowledgement deadline cannot be before detection.",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=CLOSED_VIOLATION_STATUSES)
                | (Q(closed_at__isnull=False) & ~Q(resolution_notes="")),
                name="violation_closed_needs_notes",
                violation_error_message="A resolved or risk-accepted violation needs notes and a closing time.",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.get_kind_display()}: {self.title}"

    @property
    def is_closed(self) -> bool:
        return self.status in CLOSED_VIOLATION_STATUSES


class ViolationEventKind(models.TextChoices):
    OPENED = "opened", "Opened"
    TRANSITION = "transition", "Status changed"
    OWNER = "owner", "Owner assigned"
    ESCALATED = "escalated", "Escalated (acknowledgement deadline passed)"
    SEEN_AGAIN = "seen_again", "Detected again"


class ViolationEvent(models.Model):
    """A step in a violation's handling: who did what, when, with which notes."""

    violation = models.ForeignKey(Violation, on_delete=models.PROTECT, related_name="events")
    kind = models.CharField(max_length=16, choices=ViolationEventKind.choices)
    from_status = models.CharField(max_length=16, blank=True, default="")
    to_status = models.CharField(max_length=16, blank=True, default="")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    notes = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"Violation #{self.violation_id}: {self.get_kind_display()}"
