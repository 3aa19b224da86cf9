"""The GitHub provider: answer a custom deployment protection rule through the outbox.

``POST /repos/{owner}/{repo}/actions/runs/{run_id}/deployment_protection_rule`` with
``environment_name``, ``state`` (``approved``/``rejected``) and a ``comment`` (at most 1024
characters) linking the request. The URL is the ``deployment_callback_url`` GitHub sent, accepted
only on the configured API host at intake and checked again here (no SSRF).

How GitHub's answers map to outcomes:

- 2xx: delivered.
- 422: the run is no longer waiting for this environment (already approved or rejected, or
  cancelled): counts as delivered — retrying cannot change the outcome.
- 403/429: rate limited. ``Retry-After`` is honoured; with ``x-ratelimit-remaining: 0`` the wait
  lasts until ``x-ratelimit-reset``; otherwise at least 60 s (GitHub's secondary rate limits),
  the outbox's backoff growing from there.
- 5xx, network errors, a failing token endpoint: retried with backoff.
- other 4xx (404: the run is gone): permanent failure, administrators are alerted.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from deployments.choices import DeliveryDecision, RequestSource
from deployments.delivery.providers.base import DecisionProvider, DeliveryOutcome, retry_after_seconds
from portal.links import absolute_url

from .client import GitHubClient, GitHubError, GitHubNotConfigured, is_api_url

logger = logging.getLogger(__name__)

COMMENT_LIMIT = 1024
SECONDARY_RATE_LIMIT_WAIT = 60.0
REQUIRED_IDS = ("github_run_id", "github_installation_id", "github_environment", "github_callback_url")


def request_url(request) -> str:
    return absolute_url("deployments:request_detail", request.pk)


def comment_for(request, decision: str) -> str:
    """At most 1024 characters; the link to the request is never cut off."""
    verb = "approved" if decision == DeliveryDecision.APPROVED else "rejected"
    link = request_url(request)
    summary = f"Deployment {verb} by the deployment authorization portal (request #{request.pk})."
    reason = (request.status_reason or "").strip()
    if reason:
        summary = f"{summary} {reason}"
    room = COMMENT_LIMIT - len(link) - 1
    if len(summary) > room:
        summary = summary[: room - 1].rstrip() + "…"
    return f"{summary} {link}"


def rate_limit_wait(headers, now: float | None = None) -> float:
    """Seconds to wait after a 403/429, as GitHub documents it: ``Retry-After``, else the primary limit's
    reset when it is exhausted, else at least a minute (secondary rate limits say nothing)."""
    at = None if now is None else datetime.fromtimestamp(now, UTC)
    wait = retry_after_seconds(headers, now=at)
    return SECONDARY_RATE_LIMIT_WAIT if wait is None else max(1.0, wait)


class GitHubProvider(DecisionProvider):
    name = "github"

    def targets(self, request) -> bool:
        ids = request.external_ids or {}
        return request.source == RequestSource.GITHUB and all(ids.get(key) for key in REQUIRED_IDS)

    def build_payload(self, request, decision: str) -> dict:
        return {
            "environment_name": request.external_ids["github_environment"],
            "state": "approved" if decision == DeliveryDecision.APPROVED else "rejected",
            "comment": comment_for(request, decision),
        }

    def deliver(self, delivery) -> DeliveryOutcome:
        ids = delivery.request.external_ids or {}
        url = ids.get("github_callback_url", "")
        if not is_api_url(url):
            return DeliveryOutcome(
                delivered=False,
                permanent=True,
                error="The callback URL is not on the configured GitHub API host; nothing was sent.",
            )
        fields = ("environment_name", "state", "comment")
        body = {key: delivery.payload[key] for key in fields if key in delivery.payload}
        client = GitHubClient(ids["github_installation_id"])
        try:
            response = client.request("POST", url, json=body)
        except GitHubNotConfigured as exc:
            return DeliveryOutcome(delivered=False, error=str(exc), permanent=True)
        except GitHubError as exc:
            return DeliveryOutcome(delivered=False, status_code=exc.status_code, error=str(exc)[:500])
        return outcome_for_github(response)


def outcome_for_github(response) -> DeliveryOutcome:
    code = response.status_code
    text = (response.text or "")[:300].strip()
    if 200 <= code < 300:
        return DeliveryOutcome(delivered=True, status_code=code)
    if code == 422:
        return DeliveryOutcome(
            delivered=True,
            status_code=code,
            error=f"GitHub says the run is no longer waiting (already decided): {text}",
        )
    error = f"HTTP {code}" + (f": {text}" if text else "")
    if code in (403, 429):
        return DeliveryOutcome(
            delivered=False, status_code=code, error=error, retry_after=rate_limit_wait(response.headers)
        )
    if code >= 500 or code in (401, 408, 409):
        return DeliveryOutcome(delivered=False, status_code=code, error=error)
    return DeliveryOutcome(delivered=False, status_code=code, error=error, permanent=True)
