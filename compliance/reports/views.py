"""Read-only report pages and downloads for auditors and administrators.

Every page answers GET only; anyone else gets 403 (anonymous people are sent to sign in). Every
download (and every on-screen view) is recorded as a ``ReportExport`` before it is produced.
"""

from __future__ import annotations

import tempfile
from functools import wraps
from itertools import islice

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_safe

from portal.client import client_ip

from . import exporters, registry
from .access import can_read_reports
from .forms import ReportFilterForm, filters_from_query
from .models import ExportFormat
from .registry import Filters, Report
from .services import record_export

PREVIEW_ROWS = 200
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
    "zip": "application/zip",
}
DOWNLOAD_FORMATS = ("csv", "xlsx", "json", "pdf")


def reports_reader(view):
    """Signed in, GET/HEAD only, and an auditor or administrator; otherwise 403."""

    @login_required
    @require_safe
    @wraps(view)
    def inner(request, *args, **kwargs):
        if not can_read_reports(request.user):
            raise PermissionDenied("Reports are for auditors and administrators.")
        return view(request, *args, **kwargs)

    return inner


def _report_or_404(slug: str) -> Report:
    report = registry.get(slug)
    if report is None:
        raise Http404("No such report.")
    return report


def filename(stem: str, filters: Filters, extension: str) -> str:
    parts = [stem]
    parts.append(f"{filters.date_from or 'start'}_{filters.date_to or timezone.localdate()}")  # always the period
    for value in (filters.service, filters.environment):
        if value:
            parts.append("".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in value))
    return "-".join(parts) + "." + extension


def _attachment(response: HttpResponse, name: str) -> HttpResponse:
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def export_response(report: Report, filters: Filters, fmt: str, *, user) -> HttpResponse:
    """The HTTP response for one report in one format (also used by the API)."""
    name = filename(report.slug, filters, fmt)
    if fmt == "csv":
        response = StreamingHttpResponse(exporters.csv_bytes(report, filters), content_type=CONTENT_TYPES["csv"])
    elif fmt == "json":
        response = StreamingHttpResponse(exporters.json_bytes(report, filters), content_type=CONTENT_TYPES["json"])
    elif fmt == "xlsx":
        path = exporters.temporary_path(".xlsx")
        exporters.write_xlsx(report, filters, path, generated_by=user.get_username())
        response = FileResponse(exporters.open_and_unlink(path), content_type=CONTENT_TYPES["xlsx"])
    elif fmt == "pdf":
        body = exporters.pdf_bytes(report, filters, generated_by=user.get_username())
        response = HttpResponse(body, content_type=CONTENT_TYPES["pdf"])
    else:
        raise Http404("Unknown export format.")
    return _attachment(response, name)


def bundle_response(filters: Filters, *, user) -> HttpResponse:
    target = tempfile.TemporaryFile(prefix="portal-bundle-")  # noqa: SIM115  (closed by FileResponse)
    exporters.write_bundle(target, filters=filters, generated_by=user.get_username())
    target.seek(0)
    response = FileResponse(target, content_type=CONTENT_TYPES["zip"])
    return _attachment(response, filename("evidence-bundle", filters, "zip"))



@reports_reader
def index(request):
    filters, form = filters_from_query(request.GET) if request.GET else (Filters(), ReportFilterForm())
    query = request.GET.urlencode() if filters is not None else ""
    return render(
        request,
        "reports/index.html",
        {"reports": registry.all_reports(), "form": form, "query": query, "formats": DOWNLOAD_FORMATS},
        status=200 if filters is not None else 400,
    )


@reports_reader
def detail(request, slug: str):
    report = _report_or_404(slug)
    filters, form = filters_from_query(request.GET)
    if filters is None:
        return render(request, "reports/detail.html", {"report": report, "form": form, "rows": None}, status=400)
    record_export(
        actor=request.user, report=report.slug, fmt=ExportFormat.HTML, filters=filters, ip_address=client_ip(request)
    )
    keys = report.keys
    fetched = list(islice(report.iter_rows(filters), PREVIEW_ROWS + 1))
    rows = [[exporters.cell_text(row.get(key)) for key in keys] for row in fetched[:PREVIEW_ROWS]]
    return render(
        request,
        "reports/detail.html",
        {
            "report": report,
            "form": form,
            "filters": filters,
            "rows": rows,
            "truncated": len(fetched) > PREVIEW_ROWS,
            "preview_rows": PREVIEW_ROWS,
            "query": request.GET.urlencode(),
            "formats": DOWNLOAD_FORMATS,
        },
    )


@reports_reader
def export(request, slug: str, fmt: str):
    report = _report_or_404(slug)
    if fmt not in DOWNLOAD_FORMATS:
        raise Http404("Unknown export format.")
    filters, form = filters_from_query(request.GET)
    if filters is None:
        return HttpResponseBadRequest(form.errors.as_text(), content_type="text/plain; charset=utf-8")
    record_export(actor=request.user, report=report.slug, fmt=fmt, filters=filters, ip_address=client_ip(request))
    return export_response(report, filters, fmt, user=request.user)


@reports_reader
def bundle(request):
    filters, form = filters_from_query(request.GET)
    if filters is None:
        return HttpResponseBadRequest(form.errors.as_text(), content_type="text/plain; charset=utf-8")
    record_export(actor=request.user, report="bundle", fmt=ExportFormat.ZIP, filters=filters,
                  ip_address=client_ip(request))
    return bundle_response(filters, user=request.user)
