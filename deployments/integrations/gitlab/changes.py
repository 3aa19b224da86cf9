"""What a GitLab deployment changes and whether its checks passed: the compare API since the last
successful deployment (commits, authors, committers, merge requests and their authors), and the
pipeline's jobs and the commit's statuses mapped to the environment's required check names."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from deployments.choices import CheckState, ExecutionStatus
from deployments.metrics.queries import earliest_timestamp
from deployments.models import DeploymentRequest, Environment, Execution

from .client import GitLabClient, GitLabError
from .models import GitLabProject

logger = logging.getLogger(__name__)

NOREPLY_SUFFIX = "@users.noreply.gitlab.com"
MAX_COMMITS_FOR_MERGE_REQUESTS = 20
# GitLab job and commit-status states → the portal's check states (the worst of several jobs wins).
JOB_STATES = {
    "success": CheckState.SUCCESS,
    "skipped": CheckState.SKIPPED,
    "failed": CheckState.FAILURE,
    "canceled": CheckState.FAILURE,
    "canceling": CheckState.FAILURE,
}
_SEVERITY = {
    CheckState.FAILURE: 3,
    CheckState.PENDING: 2,
    CheckState.NEUTRAL: 1,
    CheckState.SKIPPED: 1,
    CheckState.SUCCESS: 0,
}


def commit_identity(email: str | None) -> str:
    """A commit e-mail as an identity: GitLab's private ``ID-username@users.noreply.gitlab.com`` → the username."""
    email = (email or "").strip()
    if email.lower().endswith(NOREPLY_SUFFIX):
        return email[: -len(NOREPLY_SUFFIX)].partition("-")[2] or email
    return email


def last_deployed_sha(environment: Environment, *, before: DeploymentRequest) -> str | None:
    """The sha of the portal's last successful deployment to ``environment`` (other than this one)."""
    execution = (
        Execution.objects.filter(environment=environment, status=ExecutionStatus.SUCCESS)
        .exclude(sha=before.sha)
        .order_by("-created_at", "-id")
        .first()
    )
    return execution.sha if execution else None


def gitlab_last_success(client: GitLabClient, project: GitLabProject, environment: str, *, sha: str) -> str | None:
    """GitLab's own last successful deployment to ``environment`` (when the portal has none yet)."""
    for deployment in client.deployments(project.project_path, environment=environment, status="success", max_items=20):
        if deployment.get("sha") and deployment["sha"] != sha:
            return deployment["sha"]
    return None


def _diff_stats(diffs) -> tuple[int, int]:
    additions = deletions = 0
    for diff in diffs or []:
        for line in str((diff or {}).get("diff") or "").splitlines():
            if line.startswith("+") and not line.startswith("+++"):
                additions += 1
            elif line.startswith("-") and not line.startswith("---"):
                deletions += 1
    return additions, deletions


def change_set_snapshot(
    compare: dict | None, *, base: str | None, head: str, merge_requests: list[dict]
) -> tuple[dict, list[str]]:
    """The compare answer and merge requests → the snapshot kept on the request, and the change authors."""
    commits, authors = [], set()
    for commit in (compare or {}).get("commits") or []:
        if not isinstance(commit, dict):
            continue
        for role in ("author", "committer"):
            identity = commit_identity(commit.get(f"{role}_email")) or (commit.get(f"{role}_name") or "").strip()
            if identity:
                authors.add(identity)
        commits.append(
            {
                "sha": commit.get("id", ""),
                "author": commit.get("author_name", ""),
                "committer": commit.get("committer_name", ""),
                "message": (commit.get("message") or commit.get("title") or "")[:1000],
                "url": commit.get("web_url", ""),
            }
        )
    for mr in merge_requests:
        username = ((mr.get("author") or {}).get("username") or "") if isinstance(mr, dict) else ""
        if username:
            authors.add(username)
    diffs = (compare or {}).get("diffs") or []
    additions, deletions = _diff_stats(diffs)
    snapshot = {
        "first_commit_at": earliest_timestamp(c.get("authored_date") for c in (compare or {}).get("commits") or []
                                     if isinstance(c, dict)),
        "base": base,
        "head": head,
        "commits": commits,
        "files_changed": len(diffs),
        "additions": additions,
        "deletions": deletions,
        "merge_requests": [
            {
                "iid": mr.get("iid"),
                "title": (mr.get("title") or "")[:300],
                "url": mr.get("web_url", ""),
                "author": (mr.get("author") or {}).get("username", ""),
            }
            for mr in merge_requests
            if isinstance(mr, dict)
        ],
        "compare_url": (compare or {}).get("web_url", ""),
        "fetched_at": datetime.now(UTC).isoformat(),
    }
    return snapshot, sorted(authors)


def fetch_change_set(client: GitLabClient, project: GitLabProject, request: DeploymentRequest) -> tuple[dict, list]:
    """Compare the last successful deployment with the request's sha; GitLab errors other than
    "unknown base" propagate (the next poll tries again)."""
    base = last_deployed_sha(request.environment, before=request) or gitlab_last_success(
        client, project, request.environment.name, sha=request.sha
    )
    compare, error = None, ""
    if not base:
        error = "No earlier deployment to compare with: the change's commits and authors are unknown."
    else:
        try:
            compare = client.compare(project.project_path, base, request.sha)
        except GitLabError as exc:
            if exc.status_code not in (400, 404):
                raise
            error = f"GitLab cannot compare {base[:12]}...{request.sha[:12]} (HTTP {exc.status_code})."
    shas = [request.sha] + [c.get("id") for c in (compare or {}).get("commits") or [] if isinstance(c, dict)]
    merge_requests: dict[int, dict] = {}
    for sha in list(dict.fromkeys(s for s in shas if s))[:MAX_COMMITS_FOR_MERGE_REQUESTS]:
        for mr in client.merge_requests_for_commit(project.project_path, sha):
            if isinstance(mr, dict) and mr.get("iid") is not None:
                merge_requests.setdefault(mr["iid"], mr)
    snapshot, authors = change_set_snapshot(
        compare, base=base, head=request.sha, merge_requests=list(merge_requests.values())
    )
    if error:
        snapshot["error"] = error
    return snapshot, authors


def _state(raw: str | None) -> str:
    return JOB_STATES.get(raw or "", CheckState.PENDING)


def check_states(
    project: GitLabProject, jobs: list[dict], statuses: list[dict], *, exclude_job: int | None = None
) -> dict[str, str]:
    """Jobs and commit statuses → ``{portal check name: state}``.

    For one name the newest job (highest id) counts (a retried job replaces the earlier one); a
    portal check mapped to several jobs gets the worst of their states.
    """
    latest: dict[str, dict] = {}
    for item in [*statuses, *jobs]:
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not name or item.get("id") == exclude_job:
            continue
        if name not in latest or int(item.get("id") or 0) >= int(latest[name].get("id") or 0):
            latest[name] = item
    states: dict[str, str] = {}
    for name, item in latest.items():
        state = _state(item.get("status"))
        for check in project.checks_for(name):
            check = check[:200]
            if check not in states or _SEVERITY[state] > _SEVERITY[states[check]]:
                states[check] = state
    return states


def fetch_checks(client: GitLabClient, project: GitLabProject, request: DeploymentRequest) -> dict[str, str]:
    ids = request.external_ids or {}
    jobs = (
        client.pipeline_jobs(project.project_path, ids["gitlab_pipeline_id"]) if ids.get("gitlab_pipeline_id") else []
    )
    statuses = client.commit_statuses(project.project_path, request.sha)
    return check_states(project, jobs, statuses, exclude_job=ids.get("gitlab_job_id"))
