"""What the GitHub integration keeps: webhook deliveries (and refused ones), branch protection
requirements with their audits, and monitoring signals. Imported by ``deployments.models``."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

from deployments.integrations.webhooks.models import DeliveryState, ReceivedWebhook, RefusedWebhook  # noqa: F401


class GitHubWebhookDelivery(ReceivedWebhook):
    """One webhook delivery from GitHub whose signature verified, kept as received.

    ``delivery_id`` (the ``X-GitHub-Delivery`` header) is unique, so a redelivery is acknowledged
    and ignored. Headers are stored without the signatures.
    """

    delivery_id = models.CharField(max_length=100, unique=True)
    event = models.CharField(max_length=64, db_index=True)
    action = models.CharField(max_length=64, blank=True, default="")
    hook_id = models.CharField(max_length=32, blank=True, default="")
    installation_id = models.BigIntegerField(null=True, blank=True)
    repository = models.CharField(max_length=200, blank=True, default="", db_index=True)

    class Meta(ReceivedWebhook.Meta):
        verbose_name = "GitHub webhook delivery"
        verbose_name_plural = "GitHub webhook deliveries"
        constraints = [
            models.CheckConstraint(
                condition=~Q(delivery_id=""),
                name="github_delivery_has_id",
                violation_error_message="A GitHub delivery needs its X-GitHub-Delivery id.",
            ),
        ]

    def __str__(self) -> str:
        action = f".{self.action}" if self.action else ""
        return f"{self.event}{action} {self.delivery_id} ({self.get_state_display().lower()})"


class GitHubWebhookRejection(RefusedWebhook):
    """A webhook call the portal refused (bad or missing signature, too large). The newest
    ``GITHUB_WEBHOOK_REJECTIONS_KEEP`` rows are kept, and one source address writes at most one row per
    ``GITHUB_WEBHOOK_REJECTION_INTERVAL_SECONDS`` (later knocks are counted on it)."""

    delivery_id = models.CharField(max_length=100, blank=True, default="")
    body_sha256 = models.CharField(max_length=64, blank=True, default="")

    class Meta(RefusedWebhook.Meta):
        verbose_name = "GitHub webhook rejection"
        indexes = [models.Index(fields=["remote_addr", "received_at"], name="ghrejection_addr_received")]


class BranchProtectionRule(models.Model):
    """The protection a repository's branches matching ``pattern`` must have on GitHub.

    The periodic audit compares GitHub's settings with these requirements and records drift;
    with ``enforce`` switched on by an administrator it also applies them.
    """

    service = models.ForeignKey("deployments.Service", on_delete=models.CASCADE, related_name="branch_protection_rules")
    pattern = models.CharField(max_length=200, help_text='A branch name or glob, e.g. "main" or "release/*".')
    required_approving_reviews = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(0)], help_text="Pull request reviews required (at least)."
    )
    dismiss_stale_reviews = models.BooleanField(default=True)
    require_code_owner_reviews = models.BooleanField(default=False)
    required_status_checks = models.JSONField(
        default=list, blank=True, help_text='Status check contexts that must pass, e.g. ["unit", "lint"].'
    )
    strict_status_checks = models.BooleanField(default=True, help_text="Branches must be up to date before merging.")
    enforce_admins = models.BooleanField(default=True)
    allow_force_pushes = models.BooleanField(default=False)
    allow_deletions = models.BooleanField(default=False)
    restrict_pushers = models.BooleanField(
        default=False, help_text="Only the people and groups below may push (organisation repositories)."
    )
    allowed_push_users = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")
    allowed_push_groups = models.ManyToManyField(Group, blank=True, related_name="+")
    enforce = models.BooleanField(
        default=False,
        help_text="Apply these settings on GitHub when the audit finds drift (needs Administration: write).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["service__name", "pattern"]
        constraints = [
            models.UniqueConstraint(
                fields=["service", "pattern"],
                name="branch_rule_unique_pattern_per_service",
                violation_error_message="This service already has a rule for this branch pattern.",
            ),
            models.CheckConstraint(
                condition=~Q(pattern=""),
                name="branch_rule_pattern_required",
                violation_error_message="A branch protection rule needs a branch pattern.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.service.repository}:{self.pattern}"


class AuditOutcome(models.TextChoices):
    COMPLIANT = "compliant", "Compliant"
    DRIFT = "drift", "Drift found"
    ENFORCED = "enforced", "Drift found and corrected"
    ERROR = "error", "Could not audit"


class BranchProtectionAudit(models.Model):
    """One audit of one branch against its rule: what GitHub had and how it differed."""

    rule = models.ForeignKey(BranchProtectionRule, on_delete=models.CASCADE, related_name="audits")
    branch = models.CharField(max_length=255)
    outcome = models.CharField(max_length=16, choices=AuditOutcome.choices)
    differences = models.JSONField(default=list, blank=True)
    detail = models.TextField(blank=True, default="")
    checked_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-checked_at", "-id"]

    def __str__(self) -> str:
        return f"{self.rule.service.repository}:{self.branch} {self.get_outcome_display().lower()}"


class SignalKind(models.TextChoices):
    UNAUTHORIZED_PUSH = "unauthorized_push", "Push to a protected branch by someone not authorized"
    FORCE_PUSH = "force_push", "Force push or deletion of a protected branch"
    PROTECTION_CHANGED = "protection_changed", "Branch protection changed on GitHub"
    PROTECTION_DRIFT = "protection_drift", "Branch protection differs from the portal's rule"


class MonitoringSignal(models.Model):
    """Something seen on GitHub that monitoring (violations, investigations) should look at."""

    kind = models.CharField(max_length=24, choices=SignalKind.choices, db_index=True)
    service = models.ForeignKey(
        "deployments.Service", on_delete=models.PROTECT, null=True, blank=True, related_name="monitoring_signals"
    )
    repository = models.CharField(max_length=200, blank=True, default="")
    branch = models.CharField(max_length=255, blank=True, default="")
    actor_login = models.CharField(max_length=100, blank=True, default="")
    summary = models.TextField()
    details = models.JSONField(default=dict, blank=True)
    delivery = models.ForeignKey(
        GitHubWebhookDelivery, on_delete=models.PROTECT, null=True, blank=True, related_name="signals"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["delivery", "kind"],
                condition=Q(delivery__isnull=False),
                name="signal_once_per_delivery_and_kind",
                violation_error_message="This delivery already raised this signal.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.repository} {self.branch}".strip()


class GitHubStatusReport(models.Model):
    """A status report posted to a GitHub run waiting on the portal (a comment, no decision).

    GitHub shows them on the run; the portal sends at most ``MAX_PER_DEPLOYMENT`` per request.
    """

    MAX_PER_DEPLOYMENT = 10

    request = models.ForeignKey(
        "deployments.DeploymentRequest", on_delete=models.PROTECT, related_name="github_status_reports"
    )
    comment = models.TextField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    sent_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-sent_at", "-id"]

    def __str__(self) -> str:
        return f"Status report on #{self.request_id} ({self.status_code or 'not sent'})"
