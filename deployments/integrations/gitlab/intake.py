"""Finding GitLab deployments that wait for approval and making the portal's requests for them.

GitLab sends no webhook when a deployment becomes ``blocked`` (its deployment events fire on
running, success, failed and canceled), so the portal looks itself. Steps (``poll_project``, every
``GITLAB_POLL_SECONDS`` and at once when a Pipeline or Job webhook for the project arrives):

1. For each protected environment of the project's service, list GitLab's deployments to it with
   status ``blocked`` (``GET /projects/:id/deployments?environment=…&status=blocked``).
2. For each deployment the portal has not taken in (``GitLabDeploymentIntake``, unique per
   deployment, written under the environment's row lock), either link the request an earlier job of
   the same pipeline made (``portal-gate`` or the API with ``external_ids.gitlab_pipeline_id``, same
   environment and sha; if it is approved already, the approval is queued for GitLab at once) or
   submit the request through
   ``services.submit_request`` as the GitLab integration account, naming the person by GitLab
   username, with the sha, ref, and the project, deployment, job and pipeline ids. A refusal is
   recorded, GitLab is told at once (the deployment is rejected) and it is not submitted again.
3. While a request is open: record its change set once (compare since the last successful
   deployment, merge requests) and its checks at every poll (pipeline jobs and commit statuses).
"""

from __future__ import annotations

import logging

from django.db import IntegrityError, transaction
from django.db.models import Q

from compliance.errors import RuleViolation
from deployments.choices import OPEN_STATUSES, Action, DeliveryDecision, RequestSource, RequestStatus
from deployments.delivery.outbox import queue_decision
from deployments.gate import services
from deployments.models import DeploymentRequest, Environment

from .changes import fetch_change_set, fetch_checks
from .client import GitLabClient, GitLabError
from .common import gitlab_account, link
from .models import GitLabDeploymentIntake, GitLabProject
from .provider import comment_for_refusal

logger = logging.getLogger(__name__)


def external_ids(project: GitLabProject, deployment: dict, project_id: int | None) -> dict:
    job = deployment.get("deployable") if isinstance(deployment.get("deployable"), dict) else {}
    pipeline = job.get("pipeline") if isinstance(job.get("pipeline"), dict) else {}
    environment = deployment.get("environment") if isinstance(deployment.get("environment"), dict) else {}
    return {
        "gitlab_project": project.project_path,
        "gitlab_project_id": project_id,
        "gitlab_deployment_id": deployment["id"],
        "gitlab_deployment_iid": deployment.get("iid"),
        "gitlab_environment": environment.get("name", ""),
        "gitlab_job_id": job.get("id"),
        "gitlab_pipeline_id": pipeline.get("id"),
    }


def _valid(deployment) -> bool:
    return (
        isinstance(deployment, dict)
        and isinstance(deployment.get("id"), int)
        and isinstance(deployment.get("sha"), str)
        and isinstance(deployment.get("ref"), str)
    )


def take_in(
    client: GitLabClient, project: GitLabProject, environment: Environment, deployment: dict, *, project_id: int | None
) -> DeploymentRequest | None:
    """The request for one blocked deployment: the one already made, a new one, or None when refused."""
    intake = GitLabDeploymentIntake.objects.filter(project=project, deployment_id=deployment["id"]).first()
    if intake is not None:
        if intake.refused_reason and not intake.rejected_on_gitlab:
            _reject_refused(client, project, intake, deployment)
        return intake.request
    account = gitlab_account()
    job = deployment.get("deployable") if isinstance(deployment.get("deployable"), dict) else {}
    user = deployment.get("user") if isinstance(deployment.get("user"), dict) else {}
    try:
        with transaction.atomic():
            # The environment's row lock serializes two polls that found the same deployment.
            Environment.objects.select_for_update(no_key=True, of=("self",)).filter(pk=environment.pk).first()
            if GitLabDeploymentIntake.objects.filter(project=project, deployment_id=deployment["id"]).exists():
                return None
            earlier = linked_request(project, environment, deployment)
            if earlier is not None:
                return link_request(project, environment, deployment, earlier)
            request = services.submit_request(
                actor=account,
                authorized_by_integration=True,
                environment=environment,
                sha=deployment["sha"],
                ref=deployment["ref"],
                source=RequestSource.GITLAB,
                requester_login=user.get("username", "") if isinstance(user.get("username"), str) else "",
                source_url=link(job.get("web_url")),
                external_ids=external_ids(project, deployment, project_id),
                title=f"GitLab deployment {deployment.get('iid') or deployment['id']} "
                f"({job.get('name') or 'deploy'} job)"[:300],
            )
            GitLabDeploymentIntake.objects.create(
                project=project,
                deployment_id=deployment["id"],
                job_id=job.get("id"),
                environment=environment,
                request=request,
            )
    except IntegrityError:
        return None  # another poll took it in meanwhile
    except RuleViolation as exc:
        # The refusal the service recorded was rolled back with this block: keep it as evidence.
        services.record_refusal(actor=account, action=Action.SUBMIT, violation=exc, environment=environment)
        intake, _ = GitLabDeploymentIntake.objects.get_or_create(
            project=project,
            deployment_id=deployment["id"],
            defaults={"environment": environment, "refused_reason": f"{exc.code}: {exc.message}"[:2000]},
        )
        _reject_refused(client, project, intake, deployment)
        return None
    return request


def linked_request(project: GitLabProject, environment: Environment, deployment: dict) -> DeploymentRequest | None:
    """The request an earlier job of the deployment's pipeline made for the same environment and sha."""
    job = deployment.get("deployable") if isinstance(deployment.get("deployable"), dict) else {}
    pipeline_id = (job.get("pipeline") or {}).get("id") if isinstance(job.get("pipeline"), dict) else None
    if not isinstance(pipeline_id, int):
        return None
    return (
        DeploymentRequest.objects.filter(
            environment=environment, sha=deployment["sha"], status__in=(*OPEN_STATUSES, RequestStatus.APPROVED)
        )
        .filter(Q(external_ids__gitlab_pipeline_id=str(pipeline_id)) | Q(external_ids__gitlab_pipeline_id=pipeline_id))
        .exclude(source=RequestSource.GITLAB)
        .exclude(gitlab_intakes__isnull=False)
        .order_by("-pk")
        .first()
    )


def link_request(
    project: GitLabProject, environment: Environment, deployment: dict, request: DeploymentRequest
) -> DeploymentRequest:
    """Answer the GitLab deployment with ``request``'s decision (inside the caller's transaction)."""
    job = deployment.get("deployable") if isinstance(deployment.get("deployable"), dict) else {}
    GitLabDeploymentIntake.objects.create(
        project=project,
        deployment_id=deployment["id"],
        job_id=job.get("id"),
        environment=environment,
        request=request,
        linked=True,
    )
    if request.status == RequestStatus.APPROVED:
        queue_decision(request=request, decision=DeliveryDecision.APPROVED)
    return request


def _reject_refused(
    client: GitLabClient, project: GitLabProject, intake: GitLabDeploymentIntake, deployment: dict
) -> None:
    """Tell GitLab at once that the portal refused the request (there is no request for the outbox)."""
    try:
        client.approve_deployment(
            project.project_path,
            deployment["id"],
            status="rejected",
            comment=comment_for_refusal(intake.refused_reason),
            represented_as=project.represented_as,
        )
    except GitLabError as exc:
        if exc.status_code != 400:  # 400: no longer waiting — nothing left to reject
            logger.warning("Could not reject GitLab deployment %s: %s", deployment["id"], exc)
            return
    GitLabDeploymentIntake.objects.filter(pk=intake.pk).update(rejected_on_gitlab=True)


def enrich(client: GitLabClient, project: GitLabProject, request: DeploymentRequest) -> None:
    """Record the change set (once) and the checks of an open GitLab request. The change set comes
    first so change authors are known before passing checks can make the request decidable."""
    account = gitlab_account()
    if not request.change_set:
        snapshot, authors = fetch_change_set(client, project, request)
        try:
            services.record_change_set(actor=account, request=request, change_set=snapshot, change_authors=authors)
        except RuleViolation as exc:
            logger.info("Change set for request #%s not recorded: %s", request.pk, exc.message)
            return
    states = fetch_checks(client, project, request)
    request.refresh_from_db(fields=["status", "checks"])
    if not states or request.status not in OPEN_STATUSES:
        return
    if all(request.checks.get(k) == v for k, v in states.items()):
        return  # nothing new since the last poll: no event every GITLAB_POLL_SECONDS
    try:
        services.record_checks(actor=account, request=request, checks=states)
    except RuleViolation as exc:
        logger.info("Checks for request #%s not recorded: %s", request.pk, exc.message)


def protected_environments(project: GitLabProject) -> list[Environment]:
    return list(Environment.objects.filter(service=project.service, is_protected=True).select_related("service"))


def poll_project(project: GitLabProject, *, client: GitLabClient | None = None) -> dict:
    """Take in every blocked deployment of ``project`` and refresh its open requests (see module docstring)."""
    counts = {"blocked": 0, "created": 0, "refreshed": 0}
    own = client is None
    client = client or GitLabClient()
    try:
        project_id = None
        for environment in protected_environments(project):
            blocked = client.deployments(project.project_path, environment=environment.name, status="blocked")
            valid = [d for d in blocked if _valid(d)]
            if len(valid) < len(blocked):
                logger.warning("Skipping malformed deployments in %s's list from GitLab.", project.project_path)
            # Oldest first: each new request supersedes the older open ones, so the newest stays open.
            for deployment in sorted(valid, key=lambda d: d["id"]):
                counts["blocked"] += 1
                if project_id is None:
                    project_id = client.project(project.project_path).get("id")
                known = GitLabDeploymentIntake.objects.filter(project=project, deployment_id=deployment["id"]).exists()
                request = take_in(client, project, environment, deployment, project_id=project_id)
                if request is None:
                    continue
                counts["created" if not known else "refreshed"] += 1
                request.refresh_from_db()
                if request.status in OPEN_STATUSES:
                    enrich(client, project, request)
    finally:
        if own:
            client.close()
    return counts


def poll_all() -> dict:
    """Poll every active GitLab project; one project's failure does not stop the others."""
    from django.conf import settings

    if not settings.GITLAB_TOKEN:
        return {"configured": False}
    totals = {"configured": True, "projects": 0, "created": 0, "errors": 0}
    for project in GitLabProject.objects.filter(is_active=True).select_related("service"):
        totals["projects"] += 1
        try:
            totals["created"] += poll_project(project)["created"]
        except GitLabError as exc:
            totals["errors"] += 1
            logger.warning("Polling GitLab project %s failed: %s", project.project_path, exc)
    return totals
