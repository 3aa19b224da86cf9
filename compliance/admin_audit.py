"""Admin pages for the audit trail: everything here is evidence, so it is read-only in the admin.

Violations are handled (and audit reviews signed off) on the monitoring pages, through services.
"""

from django.contrib import admin

from .admin_base import ReadOnlyAdmin
from .models_audit import AuditReview, ChainLink, Violation, ViolationEvent


@admin.register(ChainLink)
class ChainLinkAdmin(ReadOnlyAdmin):
    list_display = ["seq", "model_label", "object_id", "entry_hash", "sealed_at"]
    list_filter = ["model_label"]
    search_fields = ["entry_hash", "=object_id"]


class ViolationEventInline(admin.TabularInline):
    model = ViolationEvent
    fields = ["created_at", "kind", "from_status", "to_status", "actor", "notes"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Violation)
class ViolationAdmin(ReadOnlyAdmin):
    list_display = ["id", "kind", "severity", "title", "status", "owner", "detected_at", "ack_deadline"]
    list_filter = ["kind", "severity", "status", "source"]
    search_fields = ["title", "subject", "dedup_key"]
    list_select_related = ["owner"]
    inlines = [ViolationEventInline]


@admin.register(AuditReview)
class AuditReviewAdmin(ReadOnlyAdmin):
    list_display = ["period_start", "period_end", "signed_off_by", "signed_off_at"]
    list_select_related = ["signed_off_by"]
