"""The deployment panels of the administrator monitoring page (see ``compliance.monitoring.panels``)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.apps import apps
from django.conf import settings
from django.core.exceptions import FieldDoesNotExist
from django.db.models import Count, Q
from django.utils import timezone

from compliance.models import JobHeartbeat
from compliance.monitoring.panels import Panel, register_panel
from deployments.choices import OPEN_STATUSES, ExecutionStatus
from deployments.models import DeploymentRequest, Execution, ReconciliationRun


def _start_of_day(now: datetime) -> datetime:
    local = timezone.localtime(now)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def deployments_context(*, user, now: datetime) -> dict:
    """Deployments (executions reported by CI) today and in the last seven days, authorized or not."""
    today = _start_of_day(now)
    week = today - timedelta(days=6)
    succeeded = Q(status=ExecutionStatus.SUCCESS)
    counts = Execution.objects.filter(created_at__gte=week).aggregate(
        today=Count("pk", filter=Q(created_at__gte=today)),
        today_succeeded=Count("pk", filter=Q(created_at__gte=today) & succeeded),
        today_unauthorized=Count("pk", filter=Q(created_at__gte=today, authorized=False)),
        week=Count("pk"),
        week_succeeded=Count("pk", filter=succeeded),
        week_unauthorized=Count("pk", filter=Q(authorized=False)),
    )
    recent = list(
        Execution.objects.filter(created_at__gte=week)
        .select_related("environment__service", "request")
        .order_by("-created_at", "-id")[:15]
    )
    return {"counts": counts, "executions": recent}


def requests_context(*, user, now: datetime) -> dict:
    """Open requests, and those waiting longer than PORTAL_REQUEST_OVERDUE_HOURS (or past their limit)."""
    overdue_before = now - timedelta(hours=settings.PORTAL_REQUEST_OVERDUE_HOURS)
    overdue = Q(created_at__lte=overdue_before) | Q(expires_at__lte=now)
    open_requests = DeploymentRequest.objects.filter(status__in=OPEN_STATUSES)
    counts = open_requests.aggregate(pending=Count("pk"), overdue=Count("pk", filter=overdue))
    oldest = list(
        open_requests.filter(overdue).select_related("environment__service", "requester").order_by("created_at")[:15]
    )
    return {"counts": counts, "requests": oldest, "overdue_hours": settings.PORTAL_REQUEST_OVERDUE_HOURS}


DELIVERY_MODEL = "deployments.DecisionDelivery"


def failed_deliveries_context(*, user, now: datetime) -> dict:
    """Decision deliveries to CI that gave up (rendered once the delivery outbox exists)."""
    model = apps.get_model(DELIVERY_MODEL)
    try:
        model._meta.get_field("status")
    except FieldDoesNotExist:
        return {"count": None, "deliveries": []}
    failed = model._default_manager.filter(status="failed")
    return {"count": failed.count(), "deliveries": list(failed.order_by("-pk")[:15])}


RECONCILIATION_STALE_AFTER = timedelta(hours=1)  # the job runs every 15 minutes
RECONCILIATION_TASK = "deployments.reconcile_deployments"  # its heartbeat says when the scheduler started


def reconciliation_context(*, user, now: datetime) -> dict:
    """The last reconciliation runs: is the safety net for lost events running, and can it reach CI?"""
    runs = list(ReconciliationRun.objects.order_by("-started_at", "-id")[:5])
    last_ok = next((run for run in runs if run.ok), None)
    if last_ok is None and runs:  # look further back (one query, bounded); no runs at all: nothing to find
        older = ReconciliationRun.objects.filter(finished_at__isnull=False, error="").order_by("-started_at", "-id")
        last_ok = next((run for run in older[:200] if run.ok), None)
    stale = last_ok is None or last_ok.started_at < now - RECONCILIATION_STALE_AFTER
    # Whether a CI system is configured is what the runs found. Before the first run: not an alarm while
    # the scheduler started less than the stale window ago (the first run is simply not due yet).
    if runs:
        ci_configured = any(source.get("configured") for run in runs for source in (run.sources or {}).values())
        waiting = False
    else:
        ci_configured = True  # unknown: judged as configured until a run says otherwise (deny by default)
        waiting = JobHeartbeat.objects.filter(
            task=RECONCILIATION_TASK, expected_since__gte=now - RECONCILIATION_STALE_AFTER
        ).exists()
    return {
        "runs": runs,
        "last_ok": last_ok,
        "stale": stale and ci_configured and not waiting,
        "waiting": waiting,
        "ci_configured": ci_configured,
        "stale_after_minutes": int(RECONCILIATION_STALE_AFTER.total_seconds() // 60),
    }


register_panel(Panel("deployments", "Deployments today and this week", "monitoring/panels/deployments.html",
                     deployments_context, order=10))
register_panel(Panel("requests", "Pending and overdue requests", "monitoring/panels/requests.html",
                     requests_context, order=20))
register_panel(Panel("reconciliation", "Reconciliation (lost events caught)", "monitoring/panels/reconciliation.html",
                     reconciliation_context, order=45))
register_panel(Panel("failed-deliveries", "Failed deliveries", "monitoring/panels/deliveries.html",
                     failed_deliveries_context, order=40, requires_models=(DELIVERY_MODEL,)))
