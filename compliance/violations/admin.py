"""Violations in the admin: evidence, read-only; they are handled on the monitoring pages, through services."""

from django.contrib import admin

from ..audit.admin_base import ReadOnlyAdmin
from .models import Violation, ViolationEvent


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
