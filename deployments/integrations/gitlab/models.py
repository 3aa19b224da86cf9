"""What the GitLab integration keeps: which GitLab project a service is (with its check mapping and
approval options), webhook deliveries and refused calls, branch rules and protection audits."""

from __future__ import annotations

import fnmatch

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

from deployments.integrations.webhooks.models import DeliveryState, ReceivedWebhook, RefusedWebhook  # noqa: F401

project_path_validator = RegexValidator(
    r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+$", "A GitLab project path looks like group/project or group/sub/project."
)


def validate_check_mapping(value) -> None:
    """``{"<portal check name>": ["<GitLab job or status name glob>", ...]}``."""
    if not isinstance(value, dict):
        raise ValidationError('The check mapping must be an object, e.g. {"unit": ["unit-tests*"]}.')
    for name, patterns in value.items():
        if not isinstance(name, str) or not name.strip():
            raise ValidationError("Every portal check name in the mapping must be a non-empty string.")
        if isinstance(patterns, str):
            patterns = [patterns]
        if not isinstance(patterns, list) or not patterns or not all(isinstance(p, str) and p for p in patterns):
            raise ValidationError(f"The mapping of {name!r} must be a job name (or glob) or a list of them.")


class GitLabProject(models.Model):
    """A portal service deployed by GitLab CI: its GitLab project and how the portal answers it.

    Every protected environment of the service is polled for deployments waiting for approval.
    """

    service = models.OneToOneField("deployments.Service", on_delete=models.CASCADE, related_name="gitlab_project")
    project_path = models.CharField(
        max_length=255, validators=[project_path_validator], help_text="group/project (subgroups allowed)."
    )
    check_mapping = models.JSONField(
        default=dict,
        blank=True,
        validators=[validate_check_mapping],
        help_text="Portal check name → GitLab job or commit-status names (globs), e.g. "
        '{"unit": ["unit-tests*"], "security-scan": ["sast", "dependency_scanning"]}. '
        "A job named like a required check counts without a mapping.",
    )
    represented_as = models.CharField(
        max_length=255,
        blank=True,
        default="",
        help_text="Sent as represented_as with each approval when the bot is in several approval rules.",
    )
    approve_and_deploy = models.BooleanField(
        default=False, help_text="After approving, play the blocked (manual) deployment job."
    )
    enforce_protection = models.BooleanField(
        default=False,
        help_text="When the hourly audit finds drift, correct it on GitLab: protect the branch with the rule's "
        "levels, add the portal's bot to the environment's approval rules.",
    )
    mirror_freeze_windows = models.BooleanField(
        default=False,
        help_text="Keep GitLab freeze periods (and so $CI_DEPLOY_FREEZE) equal to the portal's freeze windows "
        "of this service's protected environments.",
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["project_path"]
        verbose_name = "GitLab project"
        constraints = [
            models.UniqueConstraint(
                fields=["project_path"],
                name="gitlab_project_path_unique",
                violation_error_message="Another service already is this GitLab project.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.project_path} ({self.service.name})"

    def patterns_for(self, check: str) -> list[str]:
        patterns = (self.check_mapping or {}).get(check)
        if patterns is None:
            return [check]
        return [patterns] if isinstance(patterns, str) else list(patterns)

    def checks_for(self, name: str) -> list[str]:
        """The portal check names a GitLab job or status called ``name`` reports."""
        mapped = [
            check
            for check in (self.check_mapping or {})
            if any(fnmatch.fnmatchcase(name, p) for p in self.patterns_for(check))
        ]
        return mapped or [name]


class GitLabWebhookDelivery(ReceivedWebhook):
    """One GitLab webhook call whose token matched, kept as received (unique ``X-Gitlab-Event-UUID``)."""

    event_uuid = models.CharField(max_length=100, unique=True)
    event = models.CharField(max_length=64, db_index=True, help_text="X-Gitlab-Event, e.g. Deployment Hook.")
    object_kind = models.CharField(max_length=32, blank=True, default="")
    project_path = models.CharField(max_length=255, blank=True, default="", db_index=True)

    class Meta(ReceivedWebhook.Meta):
        verbose_name = "GitLab webhook delivery"
        verbose_name_plural = "GitLab webhook deliveries"
        constraints = [
            models.CheckConstraint(
                condition=~Q(event_uuid=""),
                name="gitlab_delivery_has_uuid",
                violation_error_message="A GitLab delivery needs its X-Gitlab-Event-UUID.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} {self.event_uuid} ({self.get_state_display().lower()})"


class GitLabWebhookRejection(RefusedWebhook):
    """A webhook call the portal refused (wrong or missing token, too large, no event id). No token."""

    event_uuid = models.CharField(max_length=100, blank=True, default="")

    class Meta(RefusedWebhook.Meta):
        verbose_name = "GitLab webhook rejection"
        indexes = [models.Index(fields=["remote_addr", "received_at"], name="glrejection_addr_received")]


class GitLabBranchRule(models.Model):
    """How a project's branches matching ``pattern`` must be protected on GitLab, and who may push."""

    project = models.ForeignKey(GitLabProject, on_delete=models.CASCADE, related_name="branch_rules")
    pattern = models.CharField(max_length=255, help_text='A branch name or glob, e.g. "main" or "release/*".')
    allow_force_push = models.BooleanField(default=False)
    push_access_level = models.PositiveSmallIntegerField(
        default=40,
        help_text="The least privileged GitLab role that may push (0 no one, 30 developers, "
        "40 maintainers); GitLab letting anyone below push is drift.",
    )
    allowed_pushers = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="+",
        help_text="People whose pushes are expected; a push by anyone else is flagged. Empty: every push is flagged.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project__project_path", "pattern"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "pattern"],
                name="gitlab_branch_rule_unique_pattern",
                violation_error_message="This project already has a rule for this pattern.",
            ),
            models.CheckConstraint(
                condition=~Q(pattern=""),
                name="gitlab_branch_rule_pattern_required",
                violation_error_message="A branch rule needs a branch pattern.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.project.project_path}:{self.pattern}"


class AuditOutcome(models.TextChoices):
    COMPLIANT = "compliant", "Compliant"
    DRIFT = "drift", "Drift found"
    ENFORCED = "enforced", "Drift corrected on GitLab"
    ERROR = "error", "Could not audit"


class GitLabProtectionAudit(models.Model):
    """One audit of a protected branch or environment on GitLab against what the portal needs."""

    project = models.ForeignKey(GitLabProject, on_delete=models.CASCADE, related_name="audits")
    kind = models.CharField(max_length=16, choices=[("branch", "Branch"), ("environment", "Environment")])
    name = models.CharField(max_length=255)
    outcome = models.CharField(max_length=16, choices=AuditOutcome.choices)
    differences = models.JSONField(default=list, blank=True)
    detail = models.TextField(blank=True, default="")
    checked_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-checked_at", "-id"]

    def __str__(self) -> str:
        return f"{self.project.project_path} {self.kind} {self.name}: {self.get_outcome_display().lower()}"


class GitLabDeploymentIntake(models.Model):
    """A GitLab deployment the poll found waiting for approval: the request made for it, or why none was.

    Unique per deployment, so polling twice (or a poll racing a webhook-triggered one) never makes two
    requests, and a refused deployment is not submitted (and refused) again at every poll.
    """

    project = models.ForeignKey(GitLabProject, on_delete=models.CASCADE, related_name="intakes")
    deployment_id = models.BigIntegerField()
    job_id = models.BigIntegerField(null=True, blank=True, help_text="The deployment's (blocked) job.")
    environment = models.ForeignKey("deployments.Environment", on_delete=models.PROTECT, related_name="+")
    request = models.ForeignKey(
        "deployments.DeploymentRequest", on_delete=models.PROTECT, null=True, blank=True, related_name="gitlab_intakes"
    )
    linked = models.BooleanField(
        default=False, help_text="The request was made earlier in the pipeline (portal-gate or the API) and linked."
    )
    refused_reason = models.TextField(blank=True, default="")
    rejected_on_gitlab = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "GitLab deployment intake"
        constraints = [
            models.UniqueConstraint(
                fields=["project", "deployment_id"],
                name="gitlab_intake_once_per_deployment",
                violation_error_message="This GitLab deployment was already taken in.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.project.project_path} deployment {self.deployment_id}"


class GitLabFreezePeriod(models.Model):
    """A GitLab freeze period the portal made to mirror one of its freeze windows.

    Only periods recorded here are ever changed or deleted: ones an administrator made on GitLab stay.
    """

    project = models.ForeignKey(GitLabProject, on_delete=models.CASCADE, related_name="freeze_periods")
    window = models.ForeignKey(
        "deployments.FreezeWindow", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    period_id = models.BigIntegerField(help_text="The freeze period's id on GitLab.")
    freeze_start = models.CharField(max_length=100)
    freeze_end = models.CharField(max_length=100)
    cron_timezone = models.CharField(max_length=64, default="UTC")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["project__project_path", "period_id"]
        verbose_name = "GitLab freeze period"
        constraints = [
            models.UniqueConstraint(
                fields=["project", "period_id"],
                name="gitlab_freeze_period_unique",
                violation_error_message="This GitLab freeze period is already mirrored.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.project.project_path} freeze period {self.period_id}"
