"""The gate's data: services, environments, their approval policies and freezes, requests, decisions,
refusals and executions."""

from __future__ import annotations

import re
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from deployments.choices import (
    TERMINAL_STATUSES,
    Action,
    CheckState,
    CIProvider,
    Decision,
    EventKind,
    ExecutionStatus,
    RequestSource,
    RequestStatus,
    RiskLevel,
    Tier,
    UnverifiedIdentity,
)

repository_validator = RegexValidator(
    r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", "Repository must look like owner/name."
)
sha_validator = RegexValidator(r"^[0-9a-f]{40}$", "A commit sha is 40 lowercase hexadecimal characters.")


def ticket_pattern_validator(value: str) -> None:
    """A ticket pattern must be a regular expression Python can compile."""
    try:
        re.compile(value)
    except re.error as exc:
        raise ValidationError(f"Not a valid regular expression: {exc}.") from exc


def ticket_url_template_validator(value: str) -> None:
    if value and ("{ticket}" not in value or not value.startswith(("https://", "http://"))):
        raise ValidationError("A ticket link template is an http(s) URL containing {ticket}.")


class Service(models.Model):
    """Something that gets deployed: one repository, built and deployed by one CI system."""

    name = models.SlugField(max_length=100, unique=True)
    display_name = models.CharField(max_length=200, blank=True, default="")
    repository = models.CharField(max_length=200, validators=[repository_validator])
    ci_provider = models.CharField(max_length=16, choices=CIProvider.choices, default=CIProvider.GITHUB)
    description = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.display_name or self.name


class Environment(models.Model):
    """A deployment target of a service. Who may request or approve here are object permissions."""

    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="environments")
    name = models.CharField(max_length=100, validators=[RegexValidator(r"^[A-Za-z0-9_.\-/ ]+$")])
    tier = models.CharField(max_length=16, choices=Tier.choices, default=Tier.STAGING)
    is_protected = models.BooleanField(
        default=True,
        help_text="Every deployment here needs an approved request; anything else is a violation.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["service__name", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["service", "name"],
                name="environment_unique_name_per_service",
                violation_error_message="This service already has an environment with this name.",
            ),
            models.CheckConstraint(
                condition=~Q(tier=Tier.PRODUCTION) | Q(is_protected=True),
                name="environment_production_is_protected",
                violation_error_message="A production environment is always protected.",
            ),
        ]
        permissions = [
            ("request_deployment", "Can request deployments to this environment"),
            ("approve_deployment", "Can approve deployments to this environment"),
        ]

    def __str__(self) -> str:
        return f"{self.service.name}/{self.name}"


class EnvironmentUserObjectPermission(UserObjectPermissionBase):
    """A per-environment permission granted to one person (guardian, direct foreign key)."""

    content_object = models.ForeignKey(Environment, on_delete=models.CASCADE)

    class Meta(UserObjectPermissionBase.Meta):
        verbose_name = "environment permission (user)"
        verbose_name_plural = "environment permissions (users)"
        ordering = ["content_object", "user"]


class EnvironmentGroupObjectPermission(GroupObjectPermissionBase):
    """A per-environment permission granted to a group (guardian, direct foreign key)."""

    content_object = models.ForeignKey(Environment, on_delete=models.CASCADE)

    class Meta(GroupObjectPermissionBase.Meta):
        verbose_name = "environment permission (group)"
        verbose_name_plural = "environment permissions (groups)"
        ordering = ["content_object", "group"]


def default_checklist() -> list[str]:
    return [
        "Impact on production assessed",
        "Meets coding standards",
        "Meets security requirements",
        "Meets business rules",
    ]


class ApprovalPolicy(models.Model):
    """The rules a request for one environment must satisfy before it may be deployed.

    ``version`` increases on every change; each request keeps a snapshot of the policy in force
    when it was submitted, so evidence shows the rules that applied.
    """

    environment = models.OneToOneField(Environment, on_delete=models.CASCADE, related_name="policy")
    required_approvals = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1)])
    exclude_change_authors = models.BooleanField(
        default=False, help_text="People who authored or committed the change may not approve it."
    )
    required_checks = models.JSONField(default=list, blank=True, help_text="Check names that must pass.")
    allowed_refs = models.JSONField(
        default=list, blank=True,
        help_text='Branch or tag glob patterns, e.g. ["main", "release/*", "v*"]. Empty allows any ref.',
    )
    request_ttl = models.DurationField(default=timedelta(hours=24))
    approval_ttl = models.DurationField(
        default=timedelta(hours=2), help_text="An approval goes stale if the deployment has not started in time."
    )
    emergency_extra_approvals = models.PositiveSmallIntegerField(
        default=1, help_text="Extra approvals an emergency request needs during a freeze."
    )
    impact_checklist = models.JSONField(default=default_checklist, blank=True)
    unverified_identity = models.CharField(
        max_length=8, choices=UnverifiedIdentity.choices, default=UnverifiedIdentity.FLAG,
        help_text="When the requester or (with change authors excluded) the change authors cannot be matched to "
        "portal people: refuse approval, or allow it and flag the request for review. Production defaults to refuse.",
    )
    trusted_checks_only = models.BooleanField(
        default=False,
        help_text="Required checks count only when reported by a CI service account or an integration, never by the "
        "requesting person. On by default for production.",
    )
    newer_request_withdraws_approvals = models.BooleanField(
        default=False,
        help_text="A newer request for this environment withdraws older approvals whose deployment has not started "
        "(CI that already has one is sent a withdrawal). Off: a newer request supersedes only undecided requests, "
        "and an approval stands until its time limit.",
    )
    require_ticket = models.BooleanField(
        default=False, help_text="A request must name the change's ticket (matching the ticket pattern)."
    )
    ticket_pattern = models.CharField(
        max_length=200, default=r"[A-Z][A-Z0-9]+-\d+", validators=[ticket_pattern_validator],
        help_text=r"Regular expression the whole ticket reference must match, e.g. [A-Z][A-Z0-9]+-\d+ (Jira), "
        r"CHG\d{7} (ServiceNow), #\d+ (GitHub issues).",
    )
    ticket_url_template = models.CharField(
        max_length=500, blank=True, default="", validators=[ticket_url_template_validator],
        help_text="Link to a ticket, with {ticket} for the reference, e.g. https://acme.atlassian.net/browse/{ticket}.",
    )
    require_risk_level = models.BooleanField(default=False, help_text="A request must state its risk level.")
    require_impact = models.BooleanField(default=False, help_text="A request must carry an impact statement.")
    require_rollback_plan = models.BooleanField(default=False, help_text="A request must carry a rollback plan.")
    step_up_minutes = models.PositiveIntegerField(
        default=0,
        help_text="Step-up: a decision must come within this many minutes of the approver's MFA sign-in or "
        "re-authentication (the web form asks for it again; API tokens cannot decide). 0 turns it off.",
    )
    version = models.PositiveIntegerField(default=1)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["environment__service__name", "environment__name"]
        verbose_name_plural = "approval policies"
        constraints = [
            models.CheckConstraint(
                condition=Q(required_approvals__gte=1),
                name="policy_at_least_one_approval",
                violation_error_message="A policy needs at least one approval.",
            ),
            models.CheckConstraint(
                condition=Q(request_ttl__gt=timedelta(0)) & Q(approval_ttl__gt=timedelta(0)),
                name="policy_positive_ttls",
                violation_error_message="Time limits must be positive.",
            ),
        ]

    def __str__(self) -> str:
        return f"Policy for {self.environment} (v{self.version})"


class FreezeWindow(models.Model):
    """A period in which deployments to an environment need an emergency justification."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="freeze_windows")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    reason = models.CharField(max_length=300)

    class Meta:
        ordering = ["-starts_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=F("starts_at")),
                name="freeze_ends_after_start",
                violation_error_message="A freeze must end after it starts.",
            ),
        ]

    def __str__(self) -> str:
        return f"Freeze of {self.environment} {self.starts_at:%Y-%m-%d %H:%M}–{self.ends_at:%Y-%m-%d %H:%M}"


class DeploymentRequest(models.Model):
    """A request to deploy one commit to one environment, and its journey to a decision."""

    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="requests")
    sha = models.CharField(max_length=40, validators=[sha_validator])
    ref = models.CharField(max_length=255)
    requester = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
        related_name="deployment_requests",
    )
    requester_login = models.CharField(
        max_length=255, blank=True, default="", help_text="The identity CI reported, mapped or not."
    )
    source = models.CharField(max_length=16, choices=RequestSource.choices, default=RequestSource.WEB)
    source_url = models.URLField(max_length=500, blank=True, default="")
    ip_address = models.GenericIPAddressField(
        null=True, blank=True, help_text="The address the request was submitted from (the person's or CI's)."
    )
    external_ids = models.JSONField(default=dict, blank=True)
    title = models.CharField(max_length=300, blank=True, default="")
    change_authors = models.JSONField(
        default=list, blank=True, help_text="Usernames or CI logins of the change's authors and committers."
    )
    change_set = models.JSONField(default=dict, blank=True)
    first_commit_at = models.DateTimeField(
        null=True, blank=True,
        help_text="When the change's first commit was made (from the change set): where lead time starts.",
    )
    checks = models.JSONField(default=dict, blank=True, help_text="Check name → state.")
    check_provenance = models.JSONField(
        default=dict, blank=True,
        help_text="Check name → who reported its latest result: {by, service_account, at}.",
    )
    policy_snapshot = models.JSONField(default=dict, blank=True)
    ticket = models.CharField(max_length=100, blank=True, default="", help_text="The change's ticket reference.")
    risk_level = models.CharField(max_length=8, choices=RiskLevel.choices, blank=True, default="")
    impact = models.TextField(blank=True, default="", help_text="What the change affects (impact statement).")
    rollback_plan = models.TextField(blank=True, default="", help_text="How the change is undone if it fails.")
    is_emergency = models.BooleanField(default=False)
    emergency_justification = models.TextField(blank=True, default="")
    during_freeze = models.BooleanField(default=False)
    flagged_for_review = models.BooleanField(default=False)
    status = models.CharField(
        max_length=20, choices=RequestStatus.choices, default=RequestStatus.PENDING_CHECKS, db_index=True
    )
    status_reason = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    expires_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)
    approval_expires_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    superseded_by = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    # Change failure rate (docs/evidence.md, "Metrics"): kept on the row so the metrics stay one scan.
    failed_change_at = models.DateTimeField(
        null=True, blank=True, help_text="When the deployment was first flagged as a failed change (an incident).")
    rolled_back_by = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        help_text="The deployment that went back to an earlier version after this one (a rollback).")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["environment", "status", "created_at"], name="request_env_status_created"),
            models.Index(fields=["status", "expires_at"], name="request_status_expiry"),
            # "My requests" on the dashboard: one person's requests, newest first.
            models.Index(fields=["requester", "created_at"], name="request_requester_created"),
            # Metrics and evidence sampling: finished deployments of an environment over a period.
            models.Index(fields=["environment", "finished_at"], name="request_env_finished"),
            # Approval wait (metrics): requests approved in a period.
            models.Index(fields=["decided_at"], name="request_decided"),
            # Rollback detection: was this sha deployed to the environment before?
            models.Index(fields=["environment", "sha"], name="request_env_sha"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(sha__regex=r"^[0-9a-f]{40}$"),
                name="request_sha_is_40_hex",
                violation_error_message="A commit sha is 40 lowercase hexadecimal characters.",
            ),
            models.CheckConstraint(
                condition=Q(is_emergency=False) | ~Q(emergency_justification=""),
                name="request_emergency_needs_justification",
                violation_error_message="An emergency request needs a justification.",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.environment} @ {self.short_sha}"

    @property
    def short_sha(self) -> str:
        return self.sha[:12]

    @property
    def ticket_url(self) -> str:
        """The ticket's link, from the link template of the policy the request was submitted under."""
        from deployments.gate.policy import ticket_url

        return ticket_url(self.ticket, (self.policy_snapshot or {}).get("ticket_url_template", ""))

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def check_states(self) -> dict[str, str]:
        return {name: (state if state in CheckState.values else CheckState.PENDING)
                for name, state in (self.checks or {}).items()}


class Approval(models.Model):
    """One person's decision on one request: approve or reject, with a comment and checklist."""

    request = models.ForeignKey(DeploymentRequest, on_delete=models.PROTECT, related_name="approvals")
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="approvals")
    decision = models.CharField(max_length=8, choices=Decision.choices)
    comment = models.TextField(blank=True, default="")
    checklist = models.JSONField(default=dict, blank=True, help_text="Checklist item → answered yes.")
    policy_version = models.PositiveIntegerField(default=1)
    policy_sha256 = models.CharField(
        max_length=64, blank=True, default="",
        help_text="SHA-256 of the request's policy snapshot the decision was made under.",
    )
    policy_acknowledged = models.BooleanField(
        default=False, help_text="The approver confirmed deciding under this policy version (the web form requires it)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    # How the approver had authenticated when deciding (compliance.identity.evidence): evidence of step-up.
    authentication_method = models.CharField(
        max_length=64, blank=True, default="",
        help_text='The approver\'s latest authentication: "password", "mfa:totp", "mfa:webauthn", "sso:<provider>", '
        '"api_token"; empty for decisions recorded before this was kept.',
    )
    authenticated_at = models.DateTimeField(null=True, blank=True, help_text="When that authentication happened.")
    mfa_authenticated_at = models.DateTimeField(
        null=True, blank=True, help_text="The approver's latest second-factor (re-)authentication in that session."
    )

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            # The dashboard's recent-decisions history reads the newest decisions first.
            models.Index(fields=["created_at", "id"], name="approval_created"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["request", "approver"],
                name="approval_one_decision_per_person",
                violation_error_message="This person has already decided on this request.",
            ),
            models.CheckConstraint(
                condition=~Q(decision=Decision.REJECT) | ~Q(comment=""),
                name="approval_reject_needs_comment",
                violation_error_message="A rejection needs a comment.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_decision_display()} by {self.approver} on #{self.request_id}"


class RequestEvent(models.Model):
    """A step in a request's life, written in the same transaction as the step (the timeline)."""

    request = models.ForeignKey(DeploymentRequest, on_delete=models.PROTECT, related_name="events")
    kind = models.CharField(max_length=24, choices=EventKind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    message = models.TextField(blank=True, default="")
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"#{self.request_id} {self.get_kind_display()}"


class Refusal(models.Model):
    """An action the portal refused, kept as evidence that the rules held."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    action = models.CharField(max_length=16, choices=Action.choices)
    code = models.CharField(max_length=64, db_index=True)
    message = models.TextField()
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    request = models.ForeignKey(
        DeploymentRequest, on_delete=models.PROTECT, null=True, blank=True, related_name="refusals"
    )
    details = models.JSONField(default=dict, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_action_display()} refused ({self.code})"


class Execution(models.Model):
    """A deployment the CI actually ran (or reported), linked to the request that authorized it."""

    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="executions")
    request = models.ForeignKey(
        DeploymentRequest, on_delete=models.PROTECT, null=True, blank=True, related_name="executions"
    )
    sha = models.CharField(max_length=40, validators=[sha_validator])
    status = models.CharField(max_length=16, choices=ExecutionStatus.choices)
    external_id = models.CharField(max_length=255, blank=True, default="")
    url = models.URLField(max_length=500, blank=True, default="")
    reported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    authorized = models.BooleanField(
        default=False, help_text="An approved, unexpired request for this sha authorized it."
    )
    flag_reason = models.TextField(blank=True, default="")
    started_at = models.DateTimeField(
        null=True, blank=True,
        help_text="When the deployment started: when it was reported, or, for a deployment found later by "
        "reconciling with the CI system, when that system says it started. Authorization is judged at this time.",
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["environment", "external_id"],
                condition=~Q(external_id=""),
                name="execution_one_per_external_id",
                violation_error_message="This CI run is already recorded for this environment.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.environment} @ {self.sha[:12]} ({self.get_status_display()})"
