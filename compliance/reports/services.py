"""The one write of the reports package: recording that someone exported a report."""

from __future__ import annotations

from django.db import transaction

from .models import ReportExport
from .registry import Filters


@transaction.atomic
def record_export(
    *, actor, report: str, fmt: str, filters: Filters, channel: str = "web", ip_address: str | None = None
) -> ReportExport:
    """Keep evidence of an export before it is produced (so an interrupted download is still recorded)."""
    return ReportExport.objects.create(
        user=actor,
        report=report,
        format=fmt,
        filters=filters.as_dict(),
        channel=channel,
        ip_address=ip_address,
    )
