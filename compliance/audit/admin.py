"""Admin pages for the audit trail: everything here is evidence, so it is read-only in the admin.

Audit reviews are signed off on the monitoring pages, through services.
"""

from auditlog.admin import LogEntryAdmin
from auditlog.models import LogEntry
from django.contrib import admin

from .admin_base import ReadOnlyAdmin, ReadOnlyAdminMixin
from .models import AuditReview, ChainLink, ForgedEntry


@admin.register(ChainLink)
class ChainLinkAdmin(ReadOnlyAdmin):
    list_display = ["seq", "model_label", "object_id", "entry_hash", "key_id", "sealed_at"]
    list_filter = ["model_label", "key_id"]
    search_fields = ["entry_hash", "public_hash", "=object_id"]


@admin.register(ForgedEntry)
class ForgedEntryAdmin(ReadOnlyAdmin):
    """Rows the sealer refused because they were not written through the portal."""

    list_display = ["model_label", "object_id", "detected_at", "alerted_at", "reason"]
    list_filter = ["model_label"]


@admin.register(AuditReview)
class AuditReviewAdmin(ReadOnlyAdmin):
    list_display = ["period_start", "period_end", "signed_off_by", "signed_off_at"]
    list_select_related = ["signed_off_by"]


class ImmutableLogEntryAdmin(ReadOnlyAdminMixin, LogEntryAdmin):
    """Audit entries are browsable, never editable or deletable, by anyone."""


admin.site.unregister(LogEntry)
admin.site.register(LogEntry, ImmutableLogEntryAdmin)
