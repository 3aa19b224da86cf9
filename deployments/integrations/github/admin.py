"""Admin pages of the GitHub integration: deliveries (re-processable), rejections, branch rules,
audits and monitoring signals. Everything received or observed is read-only evidence."""

from __future__ import annotations

from django.contrib import admin, messages

from compliance.audit.admin_base import ReadOnlyAdmin
from compliance.people.roles import administers

from . import branch_protection, events
from .models import (
    BranchProtectionAudit,
    BranchProtectionRule,
    GitHubStatusReport,
    GitHubWebhookDelivery,
    GitHubWebhookRejection,
    MonitoringSignal,
)


@admin.register(GitHubWebhookDelivery)
class GitHubWebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "event", "action", "repository", "state", "attempts", "request", "delivery_id"]
    list_filter = ["state", "event"]
    search_fields = ["delivery_id", "repository", "state_reason"]
    list_select_related = ["request__environment__service"]
    date_hierarchy = "received_at"
    readonly_fields = [
        "delivery_id",
        "event",
        "action",
        "hook_id",
        "installation_id",
        "repository",
        "state",
        "state_reason",
        "attempts",
        "request",
        "received_at",
        "processed_at",
        "headers",
        "body_sha256",
        "body",
    ]
    actions = ["reprocess"]

    @admin.action(description="Re-process the selected deliveries (failed, unconfigured or refused)")
    def reprocess(self, request, queryset):
        queued = sum(events.reprocess_delivery(actor=request.user, delivery=d) for d in queryset)
        skipped = queryset.count() - queued
        self.message_user(request, f"Queued {queued} delivery(ies) for processing.", messages.SUCCESS)
        if skipped:
            self.message_user(
                request, f"{skipped} were already processed or ignored and were left alone.", messages.WARNING
            )

    def has_reprocess_permission(self, request):
        return administers(request.user)

    reprocess.allowed_permissions = ["reprocess"]


@admin.register(GitHubWebhookRejection)
class GitHubWebhookRejectionAdmin(ReadOnlyAdmin):
    """Read-only for everyone; rows leave only through the pruning that bounds the log."""

    list_display = ["received_at", "reason", "status_code", "count", "last_received_at", "event", "delivery_id",
                    "remote_addr", "content_length"]
    list_filter = ["reason", "status_code"]
    search_fields = ["delivery_id", "remote_addr"]
    date_hierarchy = "received_at"


class AuditInline(admin.TabularInline):
    model = BranchProtectionAudit
    extra = 0
    can_delete = False
    fields = ["checked_at", "branch", "outcome", "differences", "detail"]
    readonly_fields = fields
    ordering = ["-checked_at"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(BranchProtectionRule)
class BranchProtectionRuleAdmin(admin.ModelAdmin):
    list_display = ["__str__", "required_approving_reviews", "enforce_admins", "restrict_pushers", "enforce"]
    list_filter = ["enforce", "restrict_pushers", "service"]
    search_fields = ["pattern", "service__name", "service__repository"]
    list_select_related = ["service"]
    filter_horizontal = ["allowed_push_users", "allowed_push_groups"]
    actions = ["audit_now"]

    def has_audit_permission(self, request):
        # Asks GitHub and writes audits (and drift violations): administrators only.
        return administers(request.user) and self.has_change_permission(request)

    @admin.action(description="Audit the selected rules on GitHub now", permissions=["audit"])
    def audit_now(self, request, queryset):
        audits = [audit for rule in queryset.select_related("service") for audit in branch_protection.audit_rule(rule)]
        summary = ", ".join(f"{a.branch}: {a.get_outcome_display().lower()}" for a in audits)
        self.message_user(request, f"Audited {len(audits)} branch(es). {summary}", messages.INFO)


@admin.register(BranchProtectionAudit)
class BranchProtectionAuditAdmin(ReadOnlyAdmin):
    list_display = ["checked_at", "rule", "branch", "outcome"]
    list_filter = ["outcome"]
    search_fields = ["branch", "rule__service__repository"]
    list_select_related = ["rule__service"]


@admin.register(MonitoringSignal)
class MonitoringSignalAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "kind", "repository", "branch", "actor_login", "summary"]
    list_filter = ["kind"]
    search_fields = ["repository", "branch", "actor_login", "summary"]
    list_select_related = ["service"]


@admin.register(GitHubStatusReport)
class GitHubStatusReportAdmin(ReadOnlyAdmin):
    list_display = ["sent_at", "request", "status_code", "comment"]
    search_fields = ["comment"]
    list_select_related = ["request__environment__service"]
