"""Reconciliation runs, read-only."""

from __future__ import annotations

from django.contrib import admin

from compliance.audit.admin_base import ReadOnlyAdmin
from deployments.models import (
    ReconciliationRun,
)


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(ReadOnlyAdmin):
    list_display = ["started_at", "finished_at", "opened", "sources", "error"]
