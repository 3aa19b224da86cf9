"""Read-only API: the list of reports, and one report as JSON (default) or CSV.

``GET /api/v1/reports/`` and ``GET /api/v1/reports/<slug>/?format=csv|json&from=&to=&service=&environment=``.
Auditors and administrators only; every download is recorded like the web ones.

Through an API token the token counts too (see ``access``): it must allow the ``read`` action
(else 403 ``token_scope``), and a token narrowed to services or environments gets only those
environments' rows, and only from reports that can be narrowed (others: 403
``report_not_scopable``; the list leaves them out). Each refusal is recorded.
"""

from __future__ import annotations

from django.http import Http404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import permissions, serializers
from rest_framework.exceptions import ValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.response import Response
from rest_framework.views import APIView

from compliance.errors import RuleViolation
from portal.client import client_ip

from . import registry
from .access import can_be_scoped, can_read_reports, credential_scope, scoped_report
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


REPORT_INFO = inline_serializer(
    name="ReportInfo",
    many=True,
    fields={
        "slug": serializers.CharField(),
        "title": serializers.CharField(),
        "description": serializers.CharField(),
        "columns": serializers.ListField(child=serializers.DictField(child=serializers.CharField())),
        "filters": serializers.ListField(child=serializers.ChoiceField(choices=sorted(registry.ALL_FILTERS))),
        "url": serializers.URLField(),
    },
)

REPORT_ROWS = {"type": "array", "items": {"type": "object", "additionalProperties": True},
               "description": "One object per row, keyed by the report's column keys."}

FILTER_PARAMETERS = [
    OpenApiParameter("format", str, enum=list(API_FORMATS), default="json",
                     description="json: a streamed array of row objects; csv: a streamed CSV file."),
    OpenApiParameter("from", OpenApiTypes.DATE, description="First day of the period (UTC, inclusive)."),
    OpenApiParameter("to", OpenApiTypes.DATE, description="Last day of the period (UTC, inclusive)."),
    OpenApiParameter("service", str, description="Service name (reports that do not support it ignore it)."),
    OpenApiParameter("environment", str, description="Environment name (ignored where not supported)."),
]


def _refuse(request, policy, violation: RuleViolation):
    if policy is not None:
        policy.record_refusal(actor=request.user, violation=violation,
                              ip_address=client_ip(request))
    raise violation


def readable_scope(request, *, report: str = ""):
    """The caller's report scope; refuses (recorded) a credential that does not allow reading."""
    scope, policy = credential_scope(request.auth)
    if not scope.may_read:
        _refuse(request, policy, RuleViolation(
            "token_scope",
            f"This API credential does not allow “read”, which reports need ({scope.label or 'no read action'}); "
            "create a token with the “read” action.",
            status_code=403, details={"needed_action": "read", "report": report, **scope.details},
        ))
    return scope, policy


class ReportListApi(APIView):
    permission_classes = [permissions.IsAuthenticated, CanReadReports]
    content_negotiation_class = FormatIsAFileType

    @extend_schema(
        tags=["reports"],
        summary="Every auditor report: its columns, filters and download URL (auditors and administrators)",
        description="With an API token: needs the `read` action (else 403 `token_scope`); a token scoped to "
                    "services or environments lists only the reports that can be limited to its scope.",
        responses={200: REPORT_INFO},
    )
    def get(self, request):
        scope, _ = readable_scope(request)
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
                if not scope.is_narrowed or can_be_scoped(report)
            ]
        )


class ReportExportApi(APIView):
    permission_classes = [permissions.IsAuthenticated, CanReadReports]
    content_negotiation_class = FormatIsAFileType

    @extend_schema(
        tags=["reports"],
        summary="One report for a period, as JSON or CSV (auditors and administrators; every download is recorded)",
        description="With an API token: needs the `read` action (else 403 `token_scope`); a token scoped to "
                    "services or environments gets only the rows of its environments, and a report that "
                    "cannot be limited that way is refused (403 `report_not_scopable`). Refusals are recorded.",
        parameters=FILTER_PARAMETERS,
        responses={
            (200, "application/json"): OpenApiResponse(REPORT_ROWS),
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="CSV with a header row of labels."),
        },
    )
    def get(self, request, slug: str):
        report = registry.get(slug)
        if report is None:
            raise Http404("No such report.")
        scope, policy = readable_scope(request, report=slug)
        narrowed = scoped_report(report, scope)
        if narrowed is None:
            _refuse(request, policy, RuleViolation(
                "report_not_scopable",
                f"The {report.title} report cannot be limited to the environments this API token is scoped to; "
                "read it with a token that is not scoped to services or environments.",
                status_code=403, details={"report": slug, **scope.details},
            ))
        report = narrowed
        fmt = request.query_params.get("format", "json")
        if fmt not in API_FORMATS:
            raise ValidationError({"format": f"Use one of {', '.join(API_FORMATS)}."})
        filter_names = ("from", "to", "service", "environment")
        empty = [name for name in filter_names if request.query_params.get(name, None) == ""]
        if empty:  # the API says what it means: a filter is given a value or left out
            raise ValidationError({name: ["Give a value or leave the filter out."] for name in empty})
        filters, form = filters_from_query(request.query_params)
        if filters is None:
            raise ValidationError(form.errors)
        record_export(
            actor=request.user, report=report.slug, fmt=fmt, filters=filters, channel="api",
            ip_address=client_ip(request),
        )
        return export_response(report, filters, fmt, user=request.user)
