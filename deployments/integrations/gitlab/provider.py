"""The GitLab provider: answer a blocked deployment through the outbox.

``POST /projects/:id/deployments/:deployment_id/approval`` with ``status`` (``approved`` /
``rejected``), a ``comment`` linking the request and, when the project is configured so,
``represented_as``; as the portal's bot user (the approver named in the environment's approval
rules). With "approve and deploy" on, an approval is followed by ``POST /projects/:id/jobs/:job_id/play``.

How GitLab's answers map to outcomes:

- 2xx: delivered (then the job is played, if configured).
- 400 (the deployment is no longer waiting for approvals, or was decided already): GitLab's
  deployment is read back; when its state matches the portal's decision — the bot's own approval
  or rejection is on it, or it was rejected or cancelled when the portal said no — it counts as
  delivered. Otherwise (GitLab went another way) it fails at once and administrators are alerted.
- 429 and 403 with an exhausted rate limit: retried after ``Retry-After`` / ``RateLimit-Reset``.
- 5xx, timeouts, network errors: retried with the outbox's backoff.
- other 4xx (401 bad token, 403 the bot is not an approver, 404 gone): permanent failure, alert.
"""

from __future__ import annotations

import logging

from deployments.choices import DeliveryDecision, RequestSource
from deployments.delivery.providers.base import DecisionProvider, DeliveryOutcome, retry_after_seconds
from portal.links import absolute_url

from .client import GitLabClient, GitLabError
from .models import GitLabDeploymentIntake, GitLabProject

logger = logging.getLogger(__name__)

COMMENT_LIMIT = 1000
REQUIRED_IDS = ("gitlab_project", "gitlab_deployment_id")
NOT_DEPLOYED = {"failed", "canceled", "skipped"}


def comment_for(request, decision: str) -> str:
    """The approval comment; the link to the request is never cut off."""
    verb = "Approved" if decision == DeliveryDecision.APPROVED else "Rejected"
    link = absolute_url("deployments:request_detail", request.pk)
    summary = f"{verb} by the deployment authorization portal (request #{request.pk})."
    reason = (request.status_reason or "").strip()
    if reason:
        summary = f"{summary} {reason}"
    room = COMMENT_LIMIT - len(link) - 1
    if len(summary) > room:
        summary = summary[: room - 1].rstrip() + "…"
    return f"{summary} {link}"


def comment_for_refusal(reason: str) -> str:
    return f"Refused by the deployment authorization portal: {reason}"[:COMMENT_LIMIT]


def deployment_ids(request) -> dict:
    """The GitLab deployment ``request`` answers: from its external ids (a request the poll made) or from
    the intake that linked it (a request an earlier pipeline job made through portal-gate or the API)."""
    ids = dict(request.external_ids or {}) if request.source == RequestSource.GITLAB else {}
    if all(ids.get(key) for key in REQUIRED_IDS):
        return ids
    intake = GitLabDeploymentIntake.objects.filter(request=request).select_related("project").first()
    if intake is None:
        return {}
    return {
        "gitlab_project": intake.project.project_path,
        "gitlab_deployment_id": intake.deployment_id,
        "gitlab_job_id": intake.job_id,
    }


def _project_config(request) -> GitLabProject | None:
    return GitLabProject.objects.filter(service_id=request.environment.service_id).first()


def matches_decision(deployment: dict, decision: str, bot_username: str) -> bool:
    """Does GitLab's deployment already say what the portal decided?"""
    wanted = "approved" if decision == DeliveryDecision.APPROVED else "rejected"
    for approval in deployment.get("approvals") or []:
        user = (approval.get("user") or {}) if isinstance(approval, dict) else {}
        if user.get("username", "").lower() == bot_username.lower():
            return approval.get("status") == wanted
    status = deployment.get("status")
    if decision == DeliveryDecision.REJECTED:
        return status in NOT_DEPLOYED
    return False


class GitLabProvider(DecisionProvider):
    name = "gitlab"

    def targets(self, request) -> bool:
        return bool(deployment_ids(request))

    def build_payload(self, request, decision: str) -> dict:
        config = _project_config(request)
        payload = {
            "status": "approved" if decision == DeliveryDecision.APPROVED else "rejected",
            "comment": comment_for(request, decision),
        }
        if config is not None and config.represented_as:
            payload["represented_as"] = config.represented_as
        return payload

    def deliver(self, delivery) -> DeliveryOutcome:
        ids = deployment_ids(delivery.request)
        project, deployment_id = ids.get("gitlab_project"), ids.get("gitlab_deployment_id")
        if not project or not deployment_id:
            return DeliveryOutcome(delivered=False, permanent=True, error="The request names no GitLab deployment.")
        try:
            with GitLabClient() as client:
                return self._deliver(client, delivery, project, deployment_id, ids)
        except GitLabError as exc:
            return outcome_for_error(exc)

    def _deliver(self, client: GitLabClient, delivery, project: str, deployment_id: int, ids: dict) -> DeliveryOutcome:
        payload = delivery.payload
        try:
            client.approve_deployment(
                project,
                deployment_id,
                status=payload["status"],
                comment=payload["comment"],
                represented_as=payload.get("represented_as"),
            )
            note = ""
        except GitLabError as exc:
            if exc.status_code != 400:
                raise
            bot = client.current_user().get("username", "")
            deployment = client.deployment(project, deployment_id)
            if not matches_decision(deployment, delivery.decision, bot):
                return DeliveryOutcome(
                    delivered=False,
                    status_code=400,
                    permanent=True,
                    error=f"GitLab refused the {payload['status']} decision and its deployment {deployment_id} "
                    f"says otherwise (status {deployment.get('status')!r}): {exc}"[:500],
                )
            note = f"GitLab already had this decision ({exc})"
        if delivery.decision == DeliveryDecision.APPROVED and ids.get("gitlab_job_id"):
            config = _project_config(delivery.request)
            if config is not None and config.approve_and_deploy:
                note = self._play(client, project, ids["gitlab_job_id"], note)
        return DeliveryOutcome(delivered=True, status_code=201, error=note[:500])

    def _play(self, client: GitLabClient, project: str, job_id: int, note: str) -> str:
        try:
            client.play_job(project, job_id)
        except GitLabError as exc:
            if exc.status_code not in (400, 403):  # 400: not a manual job any more (already started)
                raise
            return f"{note} The job was not played: {exc}".strip()
        return f"{note} Job {job_id} played.".strip()


def outcome_for_error(exc: GitLabError) -> DeliveryOutcome:
    code = exc.status_code
    error = str(exc)[:500]
    if exc.permanent:
        return DeliveryOutcome(delivered=False, status_code=code, error=error, permanent=True)
    wait = retry_after_seconds(exc.headers)
    if code == 429 or (code == 403 and wait is not None):
        return DeliveryOutcome(delivered=False, status_code=code, error=error, retry_after=wait or 60.0)
    if code is None or code >= 500 or code in (408, 409):
        return DeliveryOutcome(delivered=False, status_code=code, error=error, retry_after=wait)
    return DeliveryOutcome(delivered=False, status_code=code, error=error, permanent=True)
