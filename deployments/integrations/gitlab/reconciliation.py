"""Catch GitLab deployments whose deployment event never reached the portal.

Steps (``deployments.reconcile_deployments``, through the registered source):

1. For each active GitLab project and each protected environment of its service, list GitLab's
   deployments to it updated in the window (``PORTAL_RECONCILIATION_DAYS``), newest first
   (``GET /projects/:id/deployments?environment=…&updated_after=…``, every page).
2. Skip ``created`` and ``blocked`` (nothing ran) and ``failed``/``canceled`` whose job never
   started (turned down while waiting: ``deployable.started_at`` is empty).
3. A deployment the portal already has an execution for is left alone, unless the portal saw it
   start but not finish: then how it ended is recorded.
4. Any other is recorded through ``services.report_execution`` as its webhook would have been,
   inside ``detection.missed_event(...)``, so detection opens the violation with evidence that the
   event was missed (same dedup keys as the webhook path).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from compliance.errors import RuleViolation
from deployments.choices import Action, ExecutionStatus
from deployments.detection import findings as detection
from deployments.gate import services
from deployments.models import Environment, Execution

from .client import GitLabClient, GitLabError
from .common import gitlab_account, link
from .executions import DEPLOYMENT_STATES, ENDED_UNSTARTED_POSSIBLE, external_id, report
from .intake import protected_environments
from .models import GitLabProject

logger = logging.getLogger(__name__)

UNFINISHED = {ExecutionStatus.QUEUED, ExecutionStatus.IN_PROGRESS}


def _time(value) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None


def ran(deployment: dict) -> bool:
    """Did the deployment's job run (see the module docstring)?"""
    state = deployment.get("status")
    if state not in DEPLOYMENT_STATES:
        return False
    job = deployment.get("deployable") if isinstance(deployment.get("deployable"), dict) else {}
    return not (state in ENDED_UNSTARTED_POSSIBLE and not job.get("started_at"))


def _evidence(project: GitLabProject, deployment: dict) -> dict:
    job = deployment.get("deployable") if isinstance(deployment.get("deployable"), dict) else {}
    user = deployment.get("user") if isinstance(deployment.get("user"), dict) else {}
    return {
        "detected_by": "reconciliation",
        "note": "GitLab's deployment event for this deployment never reached the portal; it was found in "
        "GitLab's deployments list when reconciling.",
        "gitlab": {
            "project": project.project_path,
            "deployment_id": deployment["id"],
            "iid": deployment.get("iid"),
            "environment": (deployment.get("environment") or {}).get("name"),
            "sha": deployment.get("sha"),
            "ref": deployment.get("ref"),
            "user": user.get("username"),
            "status": deployment.get("status"),
            "created_at": deployment.get("created_at"),
            "job": job.get("web_url"),
        },
    }


def record_missed(project: GitLabProject, environment: Environment, deployment: dict) -> list | None:
    """Record one deployment the webhook missed; the violations opened, or None if known meanwhile."""
    account = gitlab_account()
    job = deployment.get("deployable") if isinstance(deployment.get("deployable"), dict) else {}
    try:
        with transaction.atomic():
            Environment.objects.select_for_update(no_key=True, of=("self",)).filter(pk=environment.pk).first()
            if Execution.objects.filter(external_id=external_id(deployment["id"])).exists():
                return None
            with detection.missed_event(_evidence(project, deployment)) as caught:
                report(
                    environment,
                    deployment_id=deployment["id"],
                    sha=deployment["sha"],
                    state=deployment["status"],
                    url=link(job.get("web_url")),
                    started_at=_time(job.get("started_at")) or _time(deployment.get("created_at")),
                )
    except RuleViolation as exc:
        services.record_refusal(actor=account, action=Action.EXECUTE, violation=exc, environment=environment)
        raise
    return caught.violations


def reconcile_environment(
    client: GitLabClient, project: GitLabProject, environment: Environment, *, since: datetime, counts: dict
) -> None:
    deployments = client.deployments(
        project.project_path, environment=environment.name, updated_after=since.isoformat()
    )
    deployments = [
        d for d in deployments if isinstance(d, dict) and isinstance(d.get("id"), int) and isinstance(d.get("sha"), str)
    ]
    known = dict(
        Execution.objects.filter(
            environment=environment, external_id__in=[external_id(d["id"]) for d in deployments]
        ).values_list("external_id", "status")
    )
    for deployment in deployments:
        counts["deployments"] += 1
        if not ran(deployment):
            counts["not_started"] += 1
            continue
        recorded = known.get(external_id(deployment["id"]))
        try:
            if recorded is not None:
                counts["known"] += 1
                if recorded in UNFINISHED and DEPLOYMENT_STATES[deployment["status"]] != recorded:
                    job = deployment.get("deployable") or {}
                    report(
                        environment,
                        deployment_id=deployment["id"],
                        sha=deployment["sha"],
                        state=deployment["status"],
                        url=link(job.get("web_url")),
                    )
                    counts["updated"] += 1
                continue
            violations = record_missed(project, environment, deployment)
        except RuleViolation as exc:
            counts["refused"] += 1
            logger.warning(
                "GitLab deployment %s of %s not recorded (%s): %s",
                deployment["id"],
                project.project_path,
                exc.code,
                exc.message,
            )
            continue
        if violations is None:
            counts["known"] += 1
            continue
        counts["recorded"] += 1
        counts["violations"] += sum(1 for v in violations if getattr(v, "created", False))
        logger.warning(
            "Recorded GitLab deployment %s of %s to %s (%s) that no event reported.",
            deployment["id"],
            project.project_path,
            environment.name,
            deployment["status"],
        )


def reconcile_gitlab_deployments(*, days: int | None = None, now: datetime | None = None) -> dict:
    """Record what GitLab deployed to protected environments that the portal never heard of."""
    if not settings.GITLAB_TOKEN:
        return {"configured": False, "skipped": "GITLAB_TOKEN is not set."}
    now = now or timezone.now()
    since = now - timedelta(days=days or settings.PORTAL_RECONCILIATION_DAYS)
    counts = {
        "configured": True,
        "projects": 0,
        "environments": 0,
        "deployments": 0,
        "known": 0,
        "recorded": 0,
        "updated": 0,
        "not_started": 0,
        "refused": 0,
        "violations": 0,
        "errors": 0,
        "failed_projects": [],
    }
    with GitLabClient() as client:
        for project in GitLabProject.objects.filter(is_active=True).select_related("service"):
            counts["projects"] += 1
            failed = False
            for environment in protected_environments(project):
                counts["environments"] += 1
                try:
                    reconcile_environment(client, project, environment, since=since, counts=counts)
                except GitLabError as exc:
                    failed = True
                    logger.warning(
                        "Reconciling %s (%s) with GitLab failed: %s", project.project_path, environment.name, exc
                    )
            if failed:
                counts["errors"] += 1
                counts["failed_projects"].append(project.project_path)
    return counts
