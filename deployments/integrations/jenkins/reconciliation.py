"""Catch Jenkins deployments whose report from the pipeline's post steps never reached the portal.

The Jenkinsfile reports its deploy stage to the portal (``POST /api/v1/requests/<id>/executions/``
with ``external_id`` = ``$BUILD_URL``). A report that is lost (the portal was down, the agent died,
someone removed the post step) would leave a deployment unrecorded, so reconciliation asks Jenkins
(every 5 minutes, and with the portal's reconciliation of every source):

1. For every build linked to a request in the window (``PORTAL_RECONCILIATION_DAYS``), and every
   build of a listed job with a literal path (no ``*``) that asked the portal nothing, read
   ``<build>/wfapi/describe`` and find the job's deploy stage.
2. A deploy stage that ran (in progress, success, failure, aborted while deploying) is recorded
   through ``services.report_execution`` with the build URL as the external id — the key the post
   step uses, so one build is one execution — and the commit the build checked out (the Git plugin's
   ``lastBuiltRevision``, else the request's sha), inside ``detection.missed_event``: detection opens
   the violation (deployed without approval, another sha, a stale approval) with source
   ``reconciliation``. A build the portal already recorded in that state is left alone.
3. A build that asked nothing and whose commit Jenkins does not say is counted as unidentified and
   logged: the portal cannot name what it deployed.

Errors for one build are logged and counted; the others are still reconciled.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from compliance.errors import RuleViolation
from compliance.people.identity import service_account
from deployments.choices import Action, ExecutionStatus
from deployments.detection import findings as detection
from deployments.gate import services
from deployments.models import Environment, Execution

from .client import JenkinsClient, JenkinsError, configured_problem, job_url, parse_build_url
from .models import JenkinsBuild, JenkinsJob
from .state import BuildState, deploy_stage_status, record_state

logger = logging.getLogger(__name__)
JENKINS_USERNAME = "jenkins-integration"
RUNNING = {"", "IN_PROGRESS", "PAUSED_PENDING_INPUT", "QUEUED", "NOT_EXECUTED"}
UNFINISHED = (ExecutionStatus.QUEUED, ExecutionStatus.IN_PROGRESS)


def jenkins_account():
    """The service account reconciled Jenkins executions are recorded under (it can never sign in)."""
    return service_account(JENKINS_USERNAME, first_name="Jenkins", last_name="integration")


def _new_counts() -> dict:
    return {
        "configured": True,
        "builds": 0,
        "known": 0,
        "recorded": 0,
        "updated": 0,
        "not_started": 0,
        "unidentified": 0,
        "refused": 0,
        "violations": 0,
        "errors": 0,
    }


def record_build(
    client: JenkinsClient,
    *,
    environment: Environment,
    build_url: str,
    deploy_stage: str,
    build: JenkinsBuild | None,
    counts: dict,
) -> None:
    """Reconcile one build (see the module docstring, steps 2 and 3)."""
    counts["builds"] += 1
    describe = client.describe(build_url)
    status = deploy_stage_status(describe, deploy_stage)
    if status is None:
        counts["not_started"] += 1
        run_status = str(describe.get("status") or "") if isinstance(describe, dict) else ""
        if build is not None and run_status not in RUNNING:
            build.result, build.settled = run_status[:32], True  # it ended without deploying
            build.save(update_fields=["result", "settled"])
        return
    recorded = (
        Execution.objects.filter(environment=environment, external_id=build_url)
        .values_list("status", flat=True)
        .first()
    )
    if recorded == status:
        counts["known"] += 1
        if build is not None and status not in UNFINISHED:
            build.settled = True
            build.save(update_fields=["settled"])
        return
    state = BuildState.from_api(client.build(build_url))
    if build is not None:
        record_state(build, state)
    sha = state.built(build.request.sha) if build is not None else state.sha
    if not sha:
        counts["unidentified"] += 1
        logger.warning(
            "Jenkins build %s deployed to %s without asking the portal, and Jenkins does not say "
            "which commit it built.",
            build_url,
            environment,
        )
        return
    evidence = {
        "source": "jenkins",
        "build_url": build_url,
        "stage": deploy_stage,
        "result": state.result,
        "proceeded_by": state.proceeded_by,
    }
    account = jenkins_account()
    try:
        with transaction.atomic(), detection.missed_event(evidence) as caught:
            services.report_execution(
                actor=account,
                environment=environment,
                sha=sha,
                status=status,
                request=build.request if build is not None else None,
                external_id=build_url,
                url=build_url,
                started_at=state.started_at,
            )
    except RuleViolation as exc:
        services.record_refusal(actor=account, action=Action.EXECUTE, violation=exc, environment=environment)
        counts["refused"] += 1
        logger.warning("Jenkins build %s not recorded (%s): %s", build_url, exc.code, exc.message)
        return
    counts["recorded" if recorded is None else "updated"] += 1
    counts["violations"] += sum(1 for v in caught.violations if getattr(v, "created", False))
    logger.warning("Recorded Jenkins build %s (%s) that no post step reported.", build_url, status)


def _builds_of_listed_jobs(client: JenkinsClient, since: datetime, linked: set[str]):
    """(job, build URL) for the builds in the window of every listed job with a literal path that
    asked the portal nothing."""
    for job in JenkinsJob.objects.select_related("environment").order_by("pk"):
        if "*" in job.job_path or "?" in job.job_path or "[" in job.job_path:
            continue
        names = tuple(n for n in job.job_path.strip("/").split("/") if n)
        for entry in client.job_builds(names):
            timestamp = entry.get("timestamp")
            number = entry.get("number")
            if not isinstance(number, int) or (isinstance(timestamp, int) and timestamp / 1000 < since.timestamp()):
                continue
            url = parse_build_url(f"{job_url(names)}{number}/").url
            if url not in linked:
                yield job, url


def _reconcile_one(build_url: str, counts: dict, **kwargs) -> None:
    """One build with its own client and deadline: a slow build never starves the others."""
    try:
        with JenkinsClient() as client:
            record_build(client, build_url=build_url, counts=counts, **kwargs)
    except JenkinsError as exc:
        counts["errors"] += 1
        logger.warning("Reconciling Jenkins build %s failed: %s", build_url, exc)


def reconcile_jenkins_builds(*, days: int | None = None, now: datetime | None = None) -> dict:
    """Record what Jenkins deployed in the last ``days`` that no post step reported (see the module
    docstring). Safe to run twice and in parallel (one build, one execution)."""
    problem = configured_problem()
    if problem:
        return {"configured": False, "skipped": problem}
    since = (now or timezone.now()) - timedelta(days=days or settings.PORTAL_RECONCILIATION_DAYS)
    counts = _new_counts()
    builds = JenkinsBuild.objects.filter(created_at__gte=since).select_related("request__environment__service")
    linked = set()
    for build in builds.order_by("pk"):
        linked.add(build.build_url)
        if build.settled:
            counts["known"] += 1  # the build ended and what it did is recorded
            continue
        _reconcile_one(
            build.build_url, counts, environment=build.request.environment, deploy_stage=build.deploy_stage, build=build
        )
    try:
        with JenkinsClient(deadline_seconds=settings.PORTAL_HTTP_TIMEOUT * 10) as client:
            unlinked = list(_builds_of_listed_jobs(client, since, linked))
    except JenkinsError as exc:
        counts["errors"] += 1
        logger.warning("Listing the builds of the Jenkins jobs failed: %s", exc)
        unlinked = []
    for job, url in unlinked:
        _reconcile_one(url, counts, environment=job.environment, deploy_stage=job.deploy_stage, build=None)
    return counts
