"""Report exports in the admin: who exported which report is evidence, read-only for everyone."""

from django.contrib import admin

from ..audit.admin_base import ReadOnlyAdmin
from .models import ReportExport


@admin.register(ReportExport)
class ReportExportAdmin(ReadOnlyAdmin):
    """Who exported which report: evidence, read-only for everyone."""

    list_display = ["created_at", "user", "report", "format", "channel", "filters", "ip_address"]
    list_filter = ["format", "channel", "report"]
    search_fields = ["user__username", "report"]
    list_select_related = ["user"]
