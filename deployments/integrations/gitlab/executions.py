"""What GitLab deployed: deployment events (``Deployment Hook``) become executions, through the same
``services.report_execution`` every CI path uses.

GitLab's deployment statuses: ``created`` and ``blocked`` (nothing ran), ``running``, ``success``,
``failed``, ``canceled``. A deployment rejected or cancelled while it waited for approval ends
``failed``/``canceled`` without its job ever starting: that is no execution (nothing was deployed),
so for those two the job is read back and only one that started counts.
"""

from __future__ import annotations

from compliance.errors import RuleViolation
from deployments.choices import ExecutionStatus
from deployments.gate import services
from deployments.models import DeploymentRequest, Environment

from .client import GitLabClient
from .common import Outcome, as_dict, as_int, as_str, gitlab_account, link, project_for
from .models import DeliveryState, GitLabProject, GitLabWebhookDelivery

DEPLOYMENT_STATES = {
    "running": ExecutionStatus.IN_PROGRESS,
    "success": ExecutionStatus.SUCCESS,
    "failed": ExecutionStatus.FAILURE,
    "canceled": ExecutionStatus.ERROR,
}
ENDED_UNSTARTED_POSSIBLE = {"failed", "canceled"}


def external_id(deployment_id: int) -> str:
    """The execution's external id, the same on the webhook and the reconciliation paths."""
    return f"gitlab-deployment-{deployment_id}"


def environment_for(project: GitLabProject, name: str) -> Environment | None:
    return Environment.objects.filter(service=project.service, name=name).select_related("service").first()


def request_for(environment: Environment, deployment_id: int) -> DeploymentRequest | None:
    """The request made for (or linked to) this GitLab deployment."""
    return (
        DeploymentRequest.objects.filter(
            environment=environment, external_ids__gitlab_deployment_id=deployment_id
        ).first()
        or DeploymentRequest.objects.filter(
            environment=environment, gitlab_intakes__deployment_id=deployment_id
        ).first()
    )


def report(environment: Environment, *, deployment_id: int, sha: str, state: str, url: str, **extra):
    return services.report_execution(
        actor=gitlab_account(),
        environment=environment,
        sha=sha,
        status=DEPLOYMENT_STATES[state],
        request=request_for(environment, deployment_id),
        external_id=external_id(deployment_id),
        url=url,
        **extra,
    )


def handle_deployment(delivery: GitLabWebhookDelivery, payload: dict) -> None:
    state = as_str(payload.get("status"), "status")
    if state not in DEPLOYMENT_STATES:
        raise Outcome(DeliveryState.IGNORED, f"Deployment status {state!r}: nothing ran yet.")
    path = as_str(as_dict(payload.get("project"), "project").get("path_with_namespace"), "project.path_with_namespace")
    deployment_id = as_int(payload.get("deployment_id"), "deployment_id")
    env_name = as_str(payload.get("environment"), "environment")
    project = project_for(path)
    if project is None:
        raise Outcome(DeliveryState.UNCONFIGURED, f"No portal service is GitLab project {path}.")
    environment = environment_for(project, env_name)
    if environment is None:
        raise Outcome(DeliveryState.UNCONFIGURED, f"No portal environment {env_name!r} for {path}.")
    job_id = payload.get("deployable_id") if isinstance(payload.get("deployable_id"), int) else None
    with GitLabClient() as client:
        # The payload names the commit by its short sha; the deployment itself has the full one.
        deployment = client.deployment(project.project_path, deployment_id)
        if state in ENDED_UNSTARTED_POSSIBLE and job_id is not None:
            job = client.job(project.project_path, job_id)
            if not job.get("started_at"):
                raise Outcome(
                    DeliveryState.IGNORED,
                    f"The deployment ended {state} before its job started "
                    "(rejected or cancelled while waiting): nothing was deployed.",
                )
    sha = as_str(deployment.get("sha"), "deployment.sha")
    try:
        execution = report(
            environment, deployment_id=deployment_id, sha=sha, state=state, url=link(payload.get("deployable_url"))
        )
    except RuleViolation as exc:
        raise Outcome(DeliveryState.REFUSED, f"Execution not recorded ({exc.code}): {exc.message}") from None
    if execution.request_id and not delivery.request_id:
        GitLabWebhookDelivery.objects.filter(pk=delivery.pk).update(request=execution.request_id)
