"""Reconciliation: the safety net for lost events. Each run asks every installed CI integration for
deployments whose event never arrived, re-scans the portal's own executions and decisions for
violations nobody opened, and is kept as a ``ReconciliationRun``."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from compliance.people.alerts import alert_administrators
from deployments import integrations
from deployments.detection.findings import approval_findings, execution_findings, open_findings
from deployments.models import (
    Approval,
    Execution,
    ReconciliationRun,
)
from portal.links import absolute_url

logger = logging.getLogger(__name__)


def reconcile(*, days: int | None = None, now: datetime | None = None) -> dict[str, int]:
    """Re-scan the last ``days`` of executions in protected environments and of decisions; open any
    violation that is missing. Idempotent (dedup keys); returns how many were newly opened."""
    now = now or timezone.now()
    since = now - timedelta(days=days or settings.PORTAL_RECONCILIATION_DAYS)
    opened = {"executions": 0, "decisions": 0}
    executions = (
        Execution.objects.filter(created_at__gte=since, environment__is_protected=True)
        .select_related("environment__service", "request__requester", "reported_by")
        .prefetch_related("request__approvals__approver")
        .order_by("pk")
    )
    for execution in executions.iterator(chunk_size=500):
        for violation in open_findings(execution_findings(execution, live=False), source="reconciliation"):
            opened["executions"] += violation.created
    approvals = (
        Approval.objects.filter(created_at__gte=since)
        .select_related("approver", "request__environment__service", "request__requester")
        .order_by("pk")
    )
    for approval in approvals.iterator(chunk_size=500):
        for violation in open_findings(approval_findings(approval, live=False), source="reconciliation"):
            opened["decisions"] += violation.created
    return opened


# --- reconciliation runs ------------------------------------------------------------------------

BLIND_AFTER_RUNS = 4  # runs every 15 minutes: an hour without a clean run
BLIND_ALERT_EVERY = timedelta(hours=24)


def run_reconciliation() -> dict:
    """One periodic run: each registered CI integration's reconciliation, then the local re-scan, kept
    as a ``ReconciliationRun``. A failing integration never stops the others or the local re-scan; when
    no run has been clean for ``BLIND_AFTER_RUNS`` runs in a row the administrators are alerted (once a
    day at most)."""
    run = ReconciliationRun.objects.create(started_at=timezone.now())
    errors, sources, results, failed, opened = [], {}, {}, [], 0
    for source in integrations.reconciliation_sources():
        try:
            ci = source.run()
        except Exception as exc:  # the others and the local re-scan must still run; the next run retries
            logger.exception("%s reconciliation failed", source.label)
            ci = {"configured": True, "failed": type(exc).__name__}
            errors.append(f"{source.label} reconciliation failed: {type(exc).__name__}")
        results[source.name] = ci
        sources[source.name] = {"label": source.label, "configured": bool(ci.get("configured")),
                                "recorded": int(ci.get("recorded", 0) or 0)}
        failed += list(ci.get("failed_repositories", []))
        opened += int(ci.get("violations", 0) or 0)
    try:
        local = reconcile()
    except Exception as exc:
        failure = "; ".join([*errors, f"Local re-scan failed: {type(exc).__name__}"])
        ReconciliationRun.objects.filter(pk=run.pk).update(finished_at=timezone.now(), error=failure)
        _alert_if_blind()
        raise
    result = {**local, **results}
    ReconciliationRun.objects.filter(pk=run.pk).update(
        finished_at=timezone.now(),
        opened=sum(local.values()) + opened,
        sources=sources,
        failed_repositories=failed,
        error="; ".join(errors),
        result=result,
    )
    _alert_if_blind()
    return result


def _alert_if_blind(now: datetime | None = None) -> bool:
    """E-mail the administrators when the last ``BLIND_AFTER_RUNS`` runs all failed somewhere: lost
    events may be going unnoticed. Claimed on the newest run, so it is sent once a day at most."""
    now = now or timezone.now()
    recent = list(ReconciliationRun.objects.filter(finished_at__isnull=False)[:BLIND_AFTER_RUNS])
    if len(recent) < BLIND_AFTER_RUNS or any(run.ok for run in recent):
        return False
    if ReconciliationRun.objects.filter(alerted_at__gte=now - BLIND_ALERT_EVERY).exists():
        return False
    if not ReconciliationRun.objects.filter(pk=recent[0].pk, alerted_at__isnull=True).update(alerted_at=now):
        return False
    problems = sorted({problem for run in recent for problem in [run.error, *run.failed_repositories] if problem})
    alert_administrators(
        f"Reconciliation has failed {BLIND_AFTER_RUNS} times in a row",
        "The periodic reconciliation that catches lost webhooks and events has not completed cleanly since "
        f"{recent[-1].started_at:%Y-%m-%d %H:%M} UTC. Until it does, a deployment whose event was lost goes "
        "unnoticed.\n\nProblems:\n" + "\n".join(f"- {p}" for p in problems)
        + f"\n\n{absolute_url('monitoring:index')}\n",
    )
    return True


