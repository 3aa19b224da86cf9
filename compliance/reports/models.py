"""Evidence that reports were exported: who exported what, in which format, with which filters."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class ExportFormat(models.TextChoices):
    HTML = "html", "Web page"
    CSV = "csv", "CSV"
    XLSX = "xlsx", "Excel (XLSX)"
    JSON = "json", "JSON"
    PDF = "pdf", "PDF"
    ZIP = "zip", "Evidence bundle (ZIP)"


class ReportExport(models.Model):
    """One export (or on-screen view) of a report, written before the file is produced."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    report = models.CharField(max_length=64, help_text='The report slug, or "bundle" for the evidence bundle.')
    format = models.CharField(max_length=8, choices=ExportFormat.choices)
    filters = models.JSONField(default=dict, blank=True)
    channel = models.CharField(max_length=8, default="web", help_text='"web" or "api".')
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        app_label = "compliance"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(format__in=ExportFormat.values),
                name="report_export_known_format",
                violation_error_message="Unknown export format.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.report} as {self.format} by {self.user_id} at {self.created_at:%Y-%m-%d %H:%M}"
