"""Read-only API: the list of reports, and one report as JSON (default) or CSV.

``GET /api/v1/reports/`` and ``GET /api/v1/reports/<slug>/?format=csv|json&from=&to=&service=&environment=``.
Auditors and administrators only; every download is recorded like the web ones.
"""

from __future__ import annotations

from django.http import Http404
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import permissions
from rest_framework.exceptions import ValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.response import Response
from rest_framework.views import APIView

from . import registry
from .access import can_read_reports
from .forms import filters_from_query
from .services import record_export
from .views import export_response

API_FORMATS = ("json", "csv")


class CanReadReports(permissions.BasePermission):
    message = "Reports are for auditors and administrators."

    def has_permission(self, request, view) -> bool:
        return request.method in permissions.SAFE_METHODS and can_read_reports(request.user)


class FormatIsAFileType(DefaultContentNegotiation):
    """``?format=csv`` picks the export's file type here, not a DRF renderer."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class ReportListApi(APIView):
    permission_classes = [permissions.IsAuthenticated, CanReadReports]
    content_negotiation_class = FormatIsAFileType

    # File downloads (CSV/JSON streams) documented in docs/reports.md, not in the JSON API schema.
    @extend_schema(exclude=True)
    def get(self, request):
        return Response(
            [
                {
                    "slug": report.slug,
                    "title": report.title,
                    "description": report.description,
                    "columns": [{"key": c.key, "label": c.label} for c in report.columns],
                    "filters": sorted(report.filters),
                    "url": request.build_absolute_uri(reverse("reports_api:detail", args=[report.slug])),
                }
                for report in registry.all_reports()
            ]
        )


class ReportExportApi(APIView):
    permission_classes = [permissions.IsAuthenticated, CanReadReports]
    content_negotiation_class = FormatIsAFileType

    @extend_schema(exclude=True)
    def get(self, request, slug: str):
        report = registry.get(slug)
        if report is None:
            raise Http404("No such report.")
        fmt = request.query_params.get("format", "json")
        if fmt not in API_FORMATS:
            raise ValidationError({"format": f"Use one of {', '.join(API_FORMATS)}."})
        filters, form = filters_from_query(request.query_params)
        if filters is None:
            raise ValidationError(form.errors)
        record_export(
            actor=request.user, report=report.slug, fmt=fmt, filters=filters, channel="api",
            ip_address=request.META.get("REMOTE_ADDR") or None,
        )
        return export_response(report, filters, fmt, user=request.user)
