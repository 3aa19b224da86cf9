"""Reports ``compliance`` itself owns: the log of report exports (who looked at what evidence)."""

from __future__ import annotations

from collections.abc import Iterator

from .models import ReportExport
from .registry import PERIOD, Column, Filters, Report, register
from .sql import IsoTimestamp

EXPORT_COLUMNS = (
    Column("exported_at", "Exported at (UTC)"),
    Column("user", "Exported by"),
    Column("report", "Report"),
    Column("format", "Format"),
    Column("channel", "Channel"),
    Column("filters", "Filters"),
    Column("ip_address", "IP address"),
)


def export_rows(filters: Filters) -> Iterator[dict]:
    queryset = filters.in_period(ReportExport.objects.all())
    rows = (
        queryset.order_by("created_at", "id")
        .annotate(exported_at=IsoTimestamp("created_at"))
        .values_list("exported_at", "user__username", "report", "format", "channel", "filters", "ip_address")
    )
    for exported_at, user, report, fmt, channel, used, ip in rows.iterator(chunk_size=2000):
        described = ", ".join(f"{key}={value}" for key, value in sorted((used or {}).items()) if value)
        yield {
            "exported_at": exported_at,
            "user": user,
            "report": report,
            "format": fmt,
            "channel": channel,
            "filters": described or "none",
            "ip_address": ip,
        }


REPORT_EXPORTS = register(
    Report(
        slug="report-exports",
        title="Report exports",
        description="Every view and export of a report in the period: who, which report, format and filters.",
        columns=EXPORT_COLUMNS,
        rows=export_rows,
        filters=frozenset({PERIOD}),
        order=900,
    )
)
