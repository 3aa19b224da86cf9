"""Catch GitHub deployments whose ``deployment_status`` webhook never reached the portal.

The webhook path (``intake.handle_deployment_status``) records what GitHub deployed as it happens.
When a delivery is lost (the portal was down, GitHub gave up retrying), nothing would ever record
that deployment, so an unauthorized production deployment would go unnoticed. Reconciliation asks
GitHub instead. Steps (``deployments.reconcile_deployments``, every 15 minutes):

1. For each GitHub service with a protected environment, find the App's installation on its
   repository (``GET /repos/{owner}/{repo}/installation``), once per repository.
2. For each protected environment, list GitHub's deployments to it, newest first
   (``GET /repos/{owner}/{repo}/deployments?environment=<name>&per_page=100``), following the
   ``Link: rel="next"`` pages and stopping at the first deployment created before the window
   (``PORTAL_RECONCILIATION_DAYS``).
3. Leave alone every deployment the portal already has an execution for
   (``external_id == "github-deployment-{id}"``): its statuses are not even read.
4. For the others, read the statuses (``GET .../deployments/{id}/statuses``, newest first) and find
   the one that says what happened (``deciding_status``).
5. Record it through ``services.report_execution`` exactly as the webhook would (same account,
   external id, request linked by deployment id), inside ``detection.missed_event(...)``: the usual
   detection opens the violation (unauthorized deployment, sha mismatch, stale approval, freeze
   breach, lapsed training) with source ``reconciliation`` and evidence that the webhook was missed.
   Dedup keys are the same as on the webhook path, so one deployment never opens two violations.

Which deployments count as having happened (``deciding_status``):

- the newest status in ``DEPLOYMENT_STATES`` other than ``waiting`` decides, mapped as the webhook
  maps it: queued and pending (→ queued: a started deployment is evidence too), in progress,
  success, failure, error. ``inactive`` is skipped: it only marks a deployment that a newer one
  replaced — that deployment still ran, so its earlier status decides;
- ``waiting``: the job waits for its protection rules (the portal's own approval among them);
  nothing ran yet, nothing is recorded, the next run looks again;
- only ``waiting`` then failure/error: the job was turned down while waiting (rejected, cancelled,
  timed out) and never ran; nothing is recorded;
- no status at all: a request to deploy that no tool has started; nothing is recorded while it
  stays so (GitHub Actions and deployment tools report a status as soon as they start).

Errors from GitHub for one repository are logged with its name and counted; the other
repositories are still reconciled. Tokens are never logged (``GitHubError`` messages carry the
path and GitHub's message only).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from compliance.errors import RuleViolation
from deployments.choices import Action, CIProvider, ExecutionStatus
from deployments.detection import findings as detection
from deployments.gate import services
from deployments.models import DeploymentRequest, Environment, Execution

from .client import GitHubClient, GitHubError, installation_for_repository
from .common import github_account, https_url
from .intake import DEPLOYMENT_STATES

logger = logging.getLogger(__name__)

PAGE_SIZE = 100  # GitHub's maximum per_page
MAX_PAGES = 50  # guard against endless pagination: 5 000 deployments per environment and window
WAITING = "waiting"
ENDED = {"failure", "error"}


def github_app_configured() -> bool:
    return bool(settings.GITHUB_APP_ID and settings.GITHUB_APP_PRIVATE_KEY)


def external_id(deployment_id: int) -> str:
    """The execution's external id, the same as the webhook path gives it."""
    return f"github-deployment-{deployment_id}"


def deciding_status(statuses: list[dict]) -> dict | None:
    """The status (``statuses`` newest first) that says what happened, or None when the deployment
    never started (see the module docstring)."""
    known = [s for s in statuses if isinstance(s, dict) and s.get("state") in DEPLOYMENT_STATES]
    started = [s for s in known if s["state"] != WAITING]
    if not started:
        return None
    if len(started) < len(known) and all(s["state"] in ENDED for s in started):
        return None  # waiting, then failed without ever running: turned down at the gate
    return started[0]


def started_at(statuses: list[dict]) -> datetime | None:
    """When the deployment started running: the oldest status (``statuses`` newest first) past
    ``waiting``. Authorization is judged at that time, not when reconciliation found it."""
    times = [_created_at(s) for s in statuses if isinstance(s, dict) and s.get("state") in DEPLOYMENT_STATES
             and s["state"] not in (WAITING, "inactive")]
    times = [t for t in times if t is not None]
    return min(times) if times else None


def _created_at(deployment: dict) -> datetime | None:
    try:
        return datetime.fromisoformat(str(deployment["created_at"]).replace("Z", "+00:00"))
    except (KeyError, TypeError, ValueError):
        return None


def deployments_in_window(
    client: GitHubClient, repository: str, environment: str, *, since: datetime
) -> Iterator[list[dict]]:
    """GitHub's deployments to ``environment`` created since ``since``, one page at a time (newest
    first); no page is fetched past the first deployment older than the window."""
    url = f"repos/{repository}/deployments"
    params: dict | None = {"environment": environment, "per_page": PAGE_SIZE}
    for _ in range(MAX_PAGES):
        response, batch = client.get_response_and_json(url, params=params)
        if not isinstance(batch, list):
            raise GitHubError(f"GET /{url} answered with a body that is not a list.")
        recent, reached_older = [], False
        for deployment in batch:
            created = _created_at(deployment) if isinstance(deployment, dict) else None
            if created is None or not isinstance(deployment.get("id"), int):
                logger.warning("Skipping a malformed deployment in %s's list from GitHub.", repository)
                continue
            if created < since:
                reached_older = True
                break
            recent.append(deployment)
        if recent:
            yield recent
        next_url = response.links.get("next", {}).get("url")
        if reached_older or not batch or not next_url:
            return
        url, params = next_url, None  # the Link URL carries the query; client.request keeps it on the API host
    logger.warning("Stopped listing %s deployments of %s after %s pages.", environment, repository, MAX_PAGES)


def _evidence(repository: str, deployment: dict, status: dict) -> dict:
    return {
        "detected_by": "reconciliation",
        "note": "GitHub's deployment_status webhook for this deployment never reached the portal; the "
        "deployment was found in GitHub's deployments list when reconciling.",
        "github": {
            "repository": repository,
            "deployment_id": deployment["id"],
            "environment": deployment.get("environment"),
            "sha": deployment.get("sha"),
            "ref": deployment.get("ref"),
            "creator": (deployment.get("creator") or {}).get("login")
            if isinstance(deployment.get("creator"), dict)
            else None,
            "created_at": deployment.get("created_at"),
            "state": status.get("state"),
            "state_at": status.get("created_at"),
            "url": deployment.get("url"),
        },
    }


def _statuses(client: GitHubClient, repository: str, deployment_id: int) -> list:
    """A deployment's statuses, newest first (anything but a list counts as none)."""
    statuses = client.get_json(
        f"repos/{repository}/deployments/{deployment_id}/statuses", params={"per_page": PAGE_SIZE}
    )
    return statuses if isinstance(statuses, list) else []


def _report(environment: Environment, deployment: dict, status: dict, *, actor, **extra):
    """Record ``deployment`` as its ``deployment_status`` webhook would have (same service call)."""
    sha = deployment.get("sha") if isinstance(deployment.get("sha"), str) else ""
    request = DeploymentRequest.objects.filter(
        environment=environment, external_ids__github_deployment_id=deployment["id"]
    ).first()
    return services.report_execution(
        actor=actor,
        environment=environment,
        sha=sha,
        status=DEPLOYMENT_STATES[status["state"]],
        request=request,
        external_id=external_id(deployment["id"]),
        url=https_url(status.get("log_url"), status.get("target_url"))[:500],
        **extra,
    )


def record_missed_deployment(
    environment: Environment, repository: str, deployment: dict, status: dict, started: datetime | None = None
) -> list | None:
    """Record one deployment the webhook missed; the violations it opened, or None when another
    path recorded it meanwhile."""
    deployment_id = deployment["id"]
    account = github_account()
    try:
        with transaction.atomic():
            # The environment's row lock serializes two reconciliations of the same environment.
            Environment.objects.select_for_update(no_key=True, of=("self",)).filter(pk=environment.pk).first()
            if Execution.objects.filter(external_id=external_id(deployment_id)).exists():
                return None
            with detection.missed_event(_evidence(repository, deployment, status)) as caught:
                _report(environment, deployment, status, actor=account,
                        started_at=started or _created_at(deployment))
    except RuleViolation as exc:
        # The refusal the service recorded was rolled back with this block: keep it as evidence.
        services.record_refusal(actor=account, action=Action.EXECUTE, violation=exc, environment=environment)
        raise
    return caught.violations


UNFINISHED = {ExecutionStatus.QUEUED, ExecutionStatus.IN_PROGRESS}


def catch_up(
    client: GitHubClient, repository: str, environment: Environment, deployment: dict, recorded: str, *, counts: dict
) -> None:
    """A deployment the portal saw start but never saw finish (its later webhooks were lost): record
    how it ended, as its webhook would have, so its request moves on to deployed or failed."""
    status = deciding_status(_statuses(client, repository, deployment["id"]))
    if status is None or DEPLOYMENT_STATES[status["state"]] == recorded:
        return
    try:
        _report(environment, deployment, status, actor=github_account())
    except RuleViolation as exc:
        counts["refused"] += 1
        logger.warning("GitHub deployment %s of %s to %s not updated (%s): %s",
                       deployment["id"], repository, environment.name, exc.code, exc.message)
        return
    counts["updated"] += 1
    logger.warning("GitHub deployment %s of %s to %s: recorded %s, which no webhook reported.",
                   deployment["id"], repository, environment.name, status["state"])


def reconcile_environment(
    client: GitHubClient, repository: str, environment: Environment, *, since: datetime, counts: dict
) -> None:
    for page in deployments_in_window(client, repository, environment.name, since=since):
        known = dict(
            Execution.objects.filter(
                environment=environment, external_id__in=[external_id(d["id"]) for d in page]
            ).values_list("external_id", "status")
        )
        for deployment in page:
            counts["deployments"] += 1
            recorded_status = known.get(external_id(deployment["id"]))
            if recorded_status is not None:
                counts["known"] += 1
                if recorded_status in UNFINISHED:
                    catch_up(client, repository, environment, deployment, recorded_status, counts=counts)
                continue
            statuses = _statuses(client, repository, deployment["id"])
            status = deciding_status(statuses)
            if status is None:
                counts["not_started"] += 1
                continue
            try:
                violations = record_missed_deployment(
                    environment, repository, deployment, status, started=started_at(statuses)
                )
            except RuleViolation as exc:
                counts["refused"] += 1
                logger.warning(
                    "GitHub deployment %s of %s to %s not recorded (%s): %s",
                    deployment["id"],
                    repository,
                    environment.name,
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
                "Recorded GitHub deployment %s of %s to %s (%s) that no webhook reported.",
                deployment["id"],
                repository,
                environment.name,
                status["state"],
            )


def _protected_environments_by_repository() -> dict[str, tuple[str, list[Environment]]]:
    environments = (
        Environment.objects.filter(is_protected=True, service__ci_provider=CIProvider.GITHUB)
        .select_related("service")
        .order_by("service__repository", "service__name", "name")
    )
    grouped: dict[str, tuple[str, list[Environment]]] = {}
    for environment in environments:
        repository = environment.service.repository
        grouped.setdefault(repository.lower(), (repository, []))[1].append(environment)
    return grouped


def _installation_client(repository: str) -> GitHubClient:
    return GitHubClient(installation_for_repository(repository))


def reconcile_github_deployments(
    *,
    days: int | None = None,
    now: datetime | None = None,
    client_factory: Callable[[str], GitHubClient] | None = None,
) -> dict:
    """Record the deployments GitHub made to protected environments in the last ``days`` that the
    portal never heard of (see the module docstring). Safe to run twice and in parallel. Returns
    counts, the repositories that failed and those the App is not installed on."""
    if not github_app_configured():
        return {
            "configured": False,
            "skipped": "The GitHub App is not configured (GITHUB_APP_ID, GITHUB_APP_PRIVATE_KEY).",
        }
    now = now or timezone.now()
    since = now - timedelta(days=days or settings.PORTAL_RECONCILIATION_DAYS)
    client_factory = client_factory or _installation_client
    counts = {
        "configured": True,
        "repositories": 0,
        "environments": 0,
        "deployments": 0,
        "known": 0,
        "recorded": 0,
        "updated": 0,
        "not_started": 0,
        "refused": 0,
        "violations": 0,
        "errors": 0,
        "failed_repositories": [],
        "not_installed": [],
    }
    for repository, environments in _protected_environments_by_repository().values():
        counts["repositories"] += 1
        try:
            client = client_factory(repository)
        except GitHubError as exc:
            if exc.status_code == 404:
                counts["not_installed"].append(repository)
                logger.warning("Cannot reconcile %s with GitHub: the App is not installed on it.", repository)
            else:
                counts["errors"] += 1
                counts["failed_repositories"].append(repository)
                logger.warning("Cannot reconcile %s with GitHub: %s", repository, exc)
            continue
        failed = False
        for environment in environments:
            counts["environments"] += 1
            try:
                reconcile_environment(client, repository, environment, since=since, counts=counts)
            except GitHubError as exc:
                failed = True
                logger.warning("Reconciling %s (%s) with GitHub failed: %s", repository, environment.name, exc)
        if failed:
            counts["errors"] += 1
            counts["failed_repositories"].append(repository)
    return counts
