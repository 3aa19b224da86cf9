"""Status reports while a GitHub run waits: ``POST .../deployment_protection_rule`` with
``environment_name`` and ``comment`` but no ``state``. At most 10 per deployment."""

from __future__ import annotations

import logging

from django.db import transaction

from deployments.choices import RequestSource, RequestStatus
from deployments.models import DeploymentRequest

from .client import GitHubClient, GitHubError, is_api_url
from .models import GitHubStatusReport
from .provider import COMMENT_LIMIT, REQUIRED_IDS, request_url

logger = logging.getLogger(__name__)


def status_comment(request: DeploymentRequest) -> str:
    link = request_url(request)
    text = f"Waiting for approval in the deployment authorization portal (request #{request.pk})."
    reason = (request.status_reason or "").strip()
    if reason:
        text = f"{text} {reason}"
    room = COMMENT_LIMIT - len(link) - 1
    if len(text) > room:
        text = text[: room - 1].rstrip() + "…"
    return f"{text} {link}"


def _claim(request_id: int) -> GitHubStatusReport | None:
    """Reserve a report slot under the request's row lock, so the limit holds across workers."""
    with transaction.atomic():
        request = (
            DeploymentRequest.objects.select_for_update(no_key=True, of=("self",))
            .filter(pk=request_id, source=RequestSource.GITHUB, status=RequestStatus.AWAITING_APPROVAL)
            .first()
        )
        if request is None or not all((request.external_ids or {}).get(k) for k in REQUIRED_IDS):
            return None
        if GitHubStatusReport.objects.filter(request=request).count() >= GitHubStatusReport.MAX_PER_DEPLOYMENT:
            return None
        return GitHubStatusReport.objects.create(request=request, comment=status_comment(request))


def post_status_report(*, request_id: int) -> bool:
    """Post one status report if the request still waits and the limit allows; True when GitHub took it."""
    report = _claim(request_id)
    if report is None:
        return False
    ids = report.request.external_ids
    url = ids["github_callback_url"]
    status_code, error = None, ""
    if not is_api_url(url):
        error = "The callback URL is not on the configured GitHub API host; nothing was sent."
    else:
        try:
            response = GitHubClient(ids["github_installation_id"]).request(
                "POST", url, json={"environment_name": ids["github_environment"], "comment": report.comment}
            )
            status_code = response.status_code
            if status_code >= 300:
                error = (response.text or "")[:500]
        except GitHubError as exc:
            error = str(exc)[:500]
    GitHubStatusReport.objects.filter(pk=report.pk).update(status_code=status_code, error=error)
    if error:
        logger.info("GitHub status report for #%s not accepted: %s", request_id, error)
    return status_code is not None and 200 <= status_code < 300
