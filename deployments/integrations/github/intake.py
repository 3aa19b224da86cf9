"""``deployment_protection_rule`` and ``deployment_status``: requests, checks, change sets, executions."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import transaction

from compliance.errors import RuleViolation
from compliance.people.alerts import alert_administrators
from deployments.choices import Action, CheckState, ExecutionStatus, RequestSource, RequestStatus
from deployments.gate import services
from deployments.gate.policy import find_ticket
from deployments.metrics.queries import earliest_timestamp
from deployments.models import ApprovalPolicy, DeploymentRequest, Environment, Execution

from .client import GitHubClient, GitHubError, is_api_url
from .common import (
    Malformed,
    Outcome,
    as_dict,
    as_int,
    as_str,
    find_environment,
    find_service,
    github_account,
    https_url,
)
from .models import DeliveryState, GitHubWebhookDelivery

logger = logging.getLogger(__name__)

RUN_ID_RE = re.compile(r"/actions/runs/(\d+)/deployment_protection_rule/?$")
# Conclusions of completed check runs → the portal's check states.
CONCLUSIONS = {
    "success": CheckState.SUCCESS,
    "neutral": CheckState.NEUTRAL,
    "skipped": CheckState.SKIPPED,
    "failure": CheckState.FAILURE,
    "cancelled": CheckState.FAILURE,
    "timed_out": CheckState.FAILURE,
    "action_required": CheckState.FAILURE,
    "startup_failure": CheckState.FAILURE,
    "stale": CheckState.PENDING,
}
# deployment_status states → execution statuses; "inactive" marks an older deployment replaced.
DEPLOYMENT_STATES = {
    "queued": ExecutionStatus.QUEUED,
    "pending": ExecutionStatus.QUEUED,
    "waiting": ExecutionStatus.QUEUED,
    "in_progress": ExecutionStatus.IN_PROGRESS,
    "success": ExecutionStatus.SUCCESS,
    "failure": ExecutionStatus.FAILURE,
    "error": ExecutionStatus.ERROR,
}
# GitHub's own committer for merges made in its web interface is not a change author.
NOT_PEOPLE = {"web-flow", "github-actions[bot]", "noreply@github.com"}
NOREPLY_SUFFIX = "@users.noreply.github.com"


def _commit_identity(email: str | None) -> str:
    """A commit's e-mail as an identity: GitHub's private ``ID+login@users.noreply…`` → the login."""
    email = (email or "").strip()
    if email.lower().endswith(NOREPLY_SUFFIX):
        return email[: -len(NOREPLY_SUFFIX)].rpartition("+")[2]
    return email


def check_states(runs: Iterable[dict]) -> dict[str, str]:
    """Check runs → ``{name: state}``; for a name seen twice the most recent run wins."""
    latest: dict[str, dict] = {}
    for run in runs:
        name = run.get("name")
        if not isinstance(name, str) or not name:
            continue
        if name not in latest or int(run.get("id") or 0) > int(latest[name].get("id") or 0):
            latest[name] = run
    states = {}
    for name, run in latest.items():
        if run.get("status") == "completed":
            states[name[:200]] = CONCLUSIONS.get(run.get("conclusion") or "", CheckState.FAILURE)
        else:
            states[name[:200]] = CheckState.PENDING
    return states


def change_set_snapshot(compare: dict | None, *, base: str | None, head: str, pulls: list[dict]) -> tuple[dict, list]:
    """The compare answer → the snapshot kept on the request, and the change authors' logins."""
    commits, authors = [], set()
    for commit in (compare or {}).get("commits") or []:
        detail = commit.get("commit") or {}
        login = (commit.get("author") or {}).get("login") or ""
        committer = (commit.get("committer") or {}).get("login") or ""
        # Git's own author and committer e-mails count too: a commit whose e-mail is linked to no
        # GitHub account still names its author.
        emails = [_commit_identity((detail.get(role) or {}).get("email")) for role in ("author", "committer")]
        for name in (login, committer, *emails):
            if name and name not in NOT_PEOPLE:
                authors.add(name)
        commits.append(
            {
                "sha": commit.get("sha", ""),
                "author": login or (detail.get("author") or {}).get("name", ""),
                "message": (detail.get("message") or "")[:1000],
                "url": commit.get("html_url", ""),
            }
        )
    for pr in pulls:
        # The pull request's author wrote the change as much as its commits' authors did.
        pr_author = (pr.get("user") or {}).get("login") or "" if isinstance(pr, dict) else ""
        if pr_author and pr_author not in NOT_PEOPLE:
            authors.add(pr_author)
    files = (compare or {}).get("files") or []
    dates = [((c.get("commit") or {}).get("author") or {}).get("date") for c in (compare or {}).get("commits") or []]
    snapshot = {
        # When the change began (the lead time of the DORA metrics): the earliest commit's author date.
        "first_commit_at": earliest_timestamp(dates),
        "base": base,
        "head": head,
        "commits": commits,
        "files_changed": len(files),
        "additions": sum(int(f.get("additions") or 0) for f in files),
        "deletions": sum(int(f.get("deletions") or 0) for f in files),
        "pull_requests": [
            {
                "number": pr.get("number"),
                "title": (pr.get("title") or "")[:300],
                "url": pr.get("html_url", ""),
                "author": (pr.get("user") or {}).get("login", ""),
            }
            for pr in pulls
            if isinstance(pr, dict)
        ],
        "compare_url": (compare or {}).get("html_url", ""),
        "fetched_at": datetime.now(UTC).isoformat(),
    }
    return snapshot, sorted(authors)


def last_deployed_sha(environment: Environment, *, before: DeploymentRequest) -> str | None:
    """The sha of the last successful deployment to ``environment`` (base of the change set)."""
    execution = (
        Execution.objects.filter(environment=environment, status=ExecutionStatus.SUCCESS)
        .exclude(sha=before.sha)
        .order_by("-created_at", "-id")
        .first()
    )
    if execution is not None:
        return execution.sha
    deployed = (
        DeploymentRequest.objects.filter(environment=environment, status=RequestStatus.DEPLOYED)
        .exclude(sha=before.sha)
        .order_by("-finished_at", "-id")
        .first()
    )
    return deployed.sha if deployed else None


# --- deployment_protection_rule -------------------------------------------------------------------


@dataclass(frozen=True)
class ProtectionRuleRequest:
    repository: str
    environment: str
    sha: str
    ref: str
    creator: str
    deployment_id: int
    run_id: int
    callback_url: str
    installation_id: int
    run_url: str
    event: str
    # Head branches of the pull requests GitHub links to the deployment (where a ticket is often named).
    pull_request_refs: tuple[str, ...] = ()

    @classmethod
    def parse(cls, payload: dict) -> ProtectionRuleRequest:
        repository = as_dict(payload.get("repository"), "repository")
        deployment = as_dict(payload.get("deployment"), "deployment")
        installation = as_dict(payload.get("installation"), "installation")
        callback_url = as_str(payload.get("deployment_callback_url"), "deployment_callback_url")
        match = RUN_ID_RE.search(callback_url)
        if not match:
            raise Malformed("deployment_callback_url does not name a workflow run")
        full_name = as_str(repository.get("full_name"), "repository.full_name")
        html_url = repository.get("html_url") if isinstance(repository.get("html_url"), str) else ""
        run_id = int(match.group(1))
        return cls(
            repository=full_name,
            environment=as_str(payload.get("environment"), "environment"),
            sha=as_str(deployment.get("sha") or payload.get("sha"), "deployment.sha"),
            ref=as_str(deployment.get("ref") or payload.get("ref"), "deployment.ref"),
            creator=((deployment.get("creator") or {}).get("login") or "")
            if isinstance(deployment.get("creator"), dict)
            else "",
            deployment_id=as_int(deployment.get("id"), "deployment.id"),
            run_id=run_id,
            callback_url=callback_url,
            installation_id=as_int(installation.get("id"), "installation.id"),
            run_url=f"{html_url}/actions/runs/{run_id}" if html_url.startswith("https://") else "",
            event=payload.get("event") if isinstance(payload.get("event"), str) else "",
            pull_request_refs=tuple(
                pr["head"]["ref"][:255] for pr in payload.get("pull_requests") or []
                if isinstance(pr, dict) and isinstance(pr.get("head"), dict) and isinstance(pr["head"].get("ref"), str)
            ),
        )

    @property
    def external_ids(self) -> dict:
        return {
            "github_deployment_id": self.deployment_id,
            "github_run_id": self.run_id,
            "github_installation_id": self.installation_id,
            "github_repository": self.repository,
            "github_environment": self.environment,
            "github_callback_url": self.callback_url,
        }


def handle_deployment_protection_rule(delivery: GitHubWebhookDelivery, payload: dict) -> None:
    if delivery.action != "requested":
        raise Outcome(DeliveryState.IGNORED, f"Action {delivery.action!r} is not used.")
    intake = ProtectionRuleRequest.parse(payload)
    if not is_api_url(intake.callback_url):
        alert_administrators(
            f"GitHub callback URL refused for {intake.repository}",
            f"Delivery {delivery.delivery_id} named a callback URL that is not on the configured GitHub API host. "
            "No request was created and nothing will be sent to it.",
        )
        raise Outcome(DeliveryState.REFUSED, "The deployment_callback_url is not on the configured GitHub API host.")
    service = find_service(intake.repository)
    environment = find_environment(service, intake.environment) if service else None
    if environment is None:
        what = (
            f"repository {intake.repository}"
            if service is None
            else f"environment {intake.environment!r} of {intake.repository}"
        )
        alert_administrators(
            f"Unconfigured GitHub deployment: {intake.repository} → {intake.environment}",
            f"GitHub asks the portal to approve a deployment of {intake.sha[:12]} ({intake.ref}) to "
            f"{intake.environment!r} of {intake.repository}, but the portal has no {what}. The deployment stays "
            f"waiting (never approved). Run: {intake.run_url or intake.callback_url}\n"
            f"Configure the service and environment, then re-process delivery {delivery.delivery_id} in the admin.",
        )
        raise Outcome(DeliveryState.UNCONFIGURED, f"No portal {what}; nothing was approved.")

    request = _request_for(delivery, intake, environment)
    enrich_request(request, intake=intake)


def _ticket_hint(environment: Environment, texts: list[str]) -> str:
    """A ticket named in the pull requests' branches or the ref, found with the environment's pattern."""
    approval_policy = ApprovalPolicy.objects.filter(environment=environment).only("ticket_pattern").first()
    return find_ticket(texts, approval_policy.ticket_pattern if approval_policy else "")


def _request_for(delivery: GitHubWebhookDelivery, intake: ProtectionRuleRequest, environment: Environment):
    """The request for this deployment: the one already created (idempotent) or a new one."""
    if delivery.request_id:
        return delivery.request
    account = github_account()
    try:
        with transaction.atomic():
            # The environment's row lock serializes two deliveries of the same deployment.
            Environment.objects.select_for_update(no_key=True, of=("self",)).filter(pk=environment.pk).first()
            existing = DeploymentRequest.objects.filter(
                environment=environment,
                source=RequestSource.GITHUB,
                external_ids__github_deployment_id=intake.deployment_id,
            ).first()
            request = existing or services.submit_request(
                actor=account,
                authorized_by_integration=True,
                environment=environment,
                sha=intake.sha,
                ref=intake.ref,
                source=RequestSource.GITHUB,
                requester_login=intake.creator,
                source_url=intake.run_url,
                external_ids=intake.external_ids,
                title=f"GitHub Actions run {intake.run_id} ({intake.event or 'deployment'})",
                ticket=_ticket_hint(environment, [*intake.pull_request_refs, intake.ref]),
            )
            GitHubWebhookDelivery.objects.filter(pk=delivery.pk).update(request=request)
            delivery.request = request
    except RuleViolation as exc:
        # The refusal the service recorded was rolled back with this block: keep it as evidence.
        services.record_refusal(actor=account, action=Action.SUBMIT, violation=exc, environment=environment)
        told = reject_on_github(intake, f"Refused by the deployment authorization portal: {exc.message}")
        after = "GitHub was told the deployment is rejected." if told else "GitHub could not be told; it keeps waiting."
        raise Outcome(
            DeliveryState.REFUSED, f"The portal refused the request ({exc.code}): {exc.message} {after}"
        ) from None
    return request


def reject_on_github(intake: ProtectionRuleRequest, comment: str) -> bool:
    """Tell a waiting run at once that the portal refused its request (there is no request to put in
    the outbox). Best effort: if GitHub cannot be reached, the run keeps waiting and nothing is approved."""
    if not is_api_url(intake.callback_url):
        return False
    body = {"environment_name": intake.environment, "state": "rejected", "comment": comment[:1024]}
    try:
        response = GitHubClient(intake.installation_id).request("POST", intake.callback_url, json=body)
    except GitHubError as exc:
        logger.warning("Could not reject GitHub run %s: %s", intake.run_id, exc)
        return False
    return 200 <= response.status_code < 300 or response.status_code == 422


def enrich_request(request: DeploymentRequest, *, intake: ProtectionRuleRequest | None = None) -> None:
    """Fetch the change set and the check runs for an open GitHub request and record them.

    The change set is recorded first so change authors are known before checks can make the
    request decidable.
    """
    ids = request.external_ids or {}
    repository = ids.get("github_repository") or request.environment.service.repository
    client = GitHubClient(ids["github_installation_id"])
    account = github_account()
    if not request.change_set:
        base = last_deployed_sha(request.environment, before=request)
        compare, compare_error = None, ""
        if not base:
            compare_error = "No earlier deployment to compare with: the change's commits and authors are unknown."
        else:
            try:
                compare = client.compare(repository, base, request.sha)
            except GitHubError as exc:
                if exc.status_code not in (404, 422):  # unreachable: retry later; unknown base: go on
                    raise
                compare_error = f"GitHub cannot compare {base[:12]}...{request.sha[:12]} (HTTP {exc.status_code})."
        try:
            pulls = client.pull_requests_for_commit(repository, request.sha)
        except GitHubError as exc:
            logger.info("Pull requests for %s unavailable: %s", request.sha, exc)
            pulls = []
        snapshot, authors = change_set_snapshot(compare, base=base, head=request.sha, pulls=pulls)
        if compare_error:
            snapshot["error"] = compare_error
        try:
            services.record_change_set(actor=account, request=request, change_set=snapshot, change_authors=authors)
        except RuleViolation as exc:
            logger.info("Change set for request #%s not recorded: %s", request.pk, exc.message)
    refresh_checks(request, client=client)


def refresh_checks(request: DeploymentRequest, *, client: GitHubClient | None = None) -> None:
    ids = request.external_ids or {}
    client = client or GitHubClient(ids["github_installation_id"])
    repository = ids.get("github_repository") or request.environment.service.repository
    states = check_states(client.check_runs(repository, request.sha))
    if not states:
        return
    try:
        services.record_checks(actor=github_account(), request=request, checks=states)
    except RuleViolation as exc:
        logger.info("Checks for request #%s not recorded: %s", request.pk, exc.message)


def refresh_pending_checks() -> int:
    """Re-read check runs for GitHub requests still waiting for checks (checks finish after intake)."""
    done = 0
    pending = DeploymentRequest.objects.filter(
        source=RequestSource.GITHUB, status=RequestStatus.PENDING_CHECKS
    ).select_related("environment__service")
    for request in pending:
        if "github_installation_id" not in (request.external_ids or {}):
            continue
        try:
            refresh_checks(request)
            done += 1
        except GitHubError as exc:
            logger.warning("Could not refresh checks of request #%s: %s", request.pk, exc)
    return done


# --- deployment_status ----------------------------------------------------------------------------


def handle_deployment_status(delivery: GitHubWebhookDelivery, payload: dict) -> None:
    status_obj = as_dict(payload.get("deployment_status"), "deployment_status")
    deployment = as_dict(payload.get("deployment"), "deployment")
    repository = as_str(as_dict(payload.get("repository"), "repository").get("full_name"), "repository.full_name")
    state = as_str(status_obj.get("state"), "deployment_status.state")
    if state == "inactive":
        raise Outcome(DeliveryState.IGNORED, "An inactive status only marks an older deployment as replaced.")
    if state == "waiting":
        # The job waits for its protection rules, the portal's own approval among them: nothing has
        # run. Recording it as an execution would flag every deployment still awaiting approval.
        raise Outcome(DeliveryState.IGNORED, "The deployment is waiting for its protection rules; nothing ran yet.")
    if state not in DEPLOYMENT_STATES:
        raise Malformed(f"unknown deployment state {state!r}")
    deployment_id = as_int(deployment.get("id"), "deployment.id")
    sha = as_str(deployment.get("sha"), "deployment.sha")
    env_name = as_str(status_obj.get("environment") or deployment.get("environment"), "deployment.environment")
    service = find_service(repository)
    environment = find_environment(service, env_name) if service else None
    if environment is None:
        if service is not None:
            raise Outcome(DeliveryState.UNCONFIGURED, f"No portal environment {env_name!r} for {repository}.")
        raise Outcome(DeliveryState.UNCONFIGURED, f"No portal service for repository {repository}.")
    request = DeploymentRequest.objects.filter(
        environment=environment, external_ids__github_deployment_id=deployment_id
    ).first()
    run = payload.get("workflow_run")
    url = https_url(
        status_obj.get("target_url"), status_obj.get("log_url"), run.get("html_url") if isinstance(run, dict) else None
    )
    try:
        execution = services.report_execution(
            actor=github_account(),
            environment=environment,
            sha=sha,
            status=DEPLOYMENT_STATES[state],
            request=request,
            external_id=f"github-deployment-{deployment_id}",
            url=url[:500],
        )
    except RuleViolation as exc:
        raise Outcome(DeliveryState.REFUSED, f"Execution not recorded ({exc.code}): {exc.message}") from None
    if execution.request_id and not delivery.request_id:
        GitHubWebhookDelivery.objects.filter(pk=delivery.pk).update(request=execution.request_id)
