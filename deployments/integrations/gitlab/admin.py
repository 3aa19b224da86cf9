"""Admin pages of the GitLab integration: projects (configuration), branch rules, deliveries
(re-processable), rejections, intakes, protection audits and mirrored freeze periods. What was received
is read-only evidence."""

from __future__ import annotations

from django.contrib import admin, messages

from compliance.audit.admin_base import ReadOnlyAdmin
from compliance.people.roles import administers

from . import events, intake
from .client import GitLabError
from .models import (
    GitLabBranchRule,
    GitLabDeploymentIntake,
    GitLabFreezePeriod,
    GitLabProject,
    GitLabProtectionAudit,
    GitLabWebhookDelivery,
    GitLabWebhookRejection,
)


class BranchRuleInline(admin.TabularInline):
    model = GitLabBranchRule
    extra = 0
    filter_horizontal = ["allowed_pushers"]


@admin.register(GitLabProject)
class GitLabProjectAdmin(admin.ModelAdmin):
    list_display = ["project_path", "service", "approve_and_deploy", "represented_as", "is_active"]
    list_filter = ["is_active", "approve_and_deploy", "enforce_protection", "mirror_freeze_windows"]
    search_fields = ["project_path", "service__name"]
    list_select_related = ["service"]
    inlines = [BranchRuleInline]
    actions = ["poll_now"]

    def has_poll_permission(self, request):
        # Calls GitLab and may create requests: administrators only.
        return administers(request.user) and self.has_change_permission(request)

    @admin.action(description="Look for deployments waiting for approval now", permissions=["poll"])
    def poll_now(self, request, queryset):
        for project in queryset.select_related("service"):
            try:
                counts = intake.poll_project(project)
            except GitLabError as exc:
                self.message_user(request, f"{project.project_path}: {exc}", messages.ERROR)
                continue
            self.message_user(
                request,
                f"{project.project_path}: {counts['blocked']} waiting, {counts['created']} new request(s).",
                messages.INFO,
            )


@admin.register(GitLabWebhookDelivery)
class GitLabWebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "event", "project_path", "state", "request", "event_uuid"]
    list_filter = ["state", "event"]
    search_fields = ["event_uuid", "project_path", "state_reason"]
    list_select_related = ["request__environment__service"]
    date_hierarchy = "received_at"
    readonly_fields = [
        "event_uuid",
        "event",
        "object_kind",
        "project_path",
        "state",
        "state_reason",
        "request",
        "received_at",
        "processed_at",
        "headers",
        "body_sha256",
        "body",
    ]
    actions = ["reprocess"]

    @admin.action(
        description="Re-process the selected deliveries (failed, unconfigured or refused)", permissions=["reprocess"]
    )
    def reprocess(self, request, queryset):
        queued = sum(events.reprocess_delivery(actor=request.user, delivery=d) for d in queryset)
        self.message_user(request, f"Queued {queued} delivery(ies) for processing.", messages.SUCCESS)

    def has_reprocess_permission(self, request):
        return administers(request.user)


@admin.register(GitLabWebhookRejection)
class GitLabWebhookRejectionAdmin(ReadOnlyAdmin):
    """Read-only for everyone; rows leave only through the pruning that bounds the log."""

    list_display = [
        "received_at",
        "reason",
        "status_code",
        "count",
        "last_received_at",
        "event",
        "event_uuid",
        "remote_addr",
        "content_length",
    ]
    list_filter = ["reason", "status_code"]
    search_fields = ["event_uuid", "remote_addr"]
    date_hierarchy = "received_at"


@admin.register(GitLabDeploymentIntake)
class GitLabDeploymentIntakeAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "project",
        "deployment_id",
        "environment",
        "request",
        "refused_reason",
        "rejected_on_gitlab",
    ]
    search_fields = ["project__project_path", "refused_reason"]
    list_select_related = ["project", "environment__service", "request"]


@admin.register(GitLabProtectionAudit)
class GitLabProtectionAuditAdmin(ReadOnlyAdmin):
    list_display = ["checked_at", "project", "kind", "name", "outcome"]
    list_filter = ["outcome", "kind"]
    search_fields = ["project__project_path", "name", "detail"]
    list_select_related = ["project"]


@admin.register(GitLabFreezePeriod)
class GitLabFreezePeriodAdmin(ReadOnlyAdmin):
    list_display = ["project", "period_id", "window", "freeze_start", "freeze_end", "cron_timezone", "updated_at"]
    search_fields = ["project__project_path"]
    list_select_related = ["project", "window__environment__service"]
