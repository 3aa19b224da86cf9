"""``Push Hook``: a push to a protected branch by someone the portal's branch rule does not name is
flagged (``deployments.detection.findings.report_unauthorized_push`` opens the violation, one per sha)."""

from __future__ import annotations

import fnmatch
import logging

from compliance.people.identity import resolve_person
from deployments.detection import findings as detection

from .common import Outcome, as_dict, as_str, link, project_for
from .models import DeliveryState, GitLabBranchRule, GitLabWebhookDelivery

logger = logging.getLogger(__name__)
ZERO_SHA = "0" * 40


def rules_for(project, branch: str) -> list[GitLabBranchRule]:
    return [rule for rule in project.branch_rules.all() if fnmatch.fnmatchcase(branch, rule.pattern)]


def handle_push(delivery: GitLabWebhookDelivery, payload: dict) -> None:
    path = as_str(as_dict(payload.get("project"), "project").get("path_with_namespace"), "project.path_with_namespace")
    ref = as_str(payload.get("ref"), "ref")
    if not ref.startswith("refs/heads/"):
        raise Outcome(DeliveryState.IGNORED, "Not a branch push.")
    branch = ref.removeprefix("refs/heads/")
    project = project_for(path)
    if project is None:
        raise Outcome(DeliveryState.IGNORED, f"No portal service is GitLab project {path}.")
    rules = rules_for(project, branch)
    if not rules:
        raise Outcome(DeliveryState.IGNORED, f"Branch {branch!r} is not protected by a portal rule.")
    username = payload.get("user_username") if isinstance(payload.get("user_username"), str) else ""
    person = resolve_person(username)
    allowed = person is not None and all(rule.allowed_pushers.filter(pk=person.pk).exists() for rule in rules)
    if allowed:
        return
    after = payload.get("after") if isinstance(payload.get("after"), str) else ""
    web_url = (payload.get("project") or {}).get("web_url")
    detection.report_unauthorized_push(
        repository=path,
        branch=branch,
        sha=after,
        pusher_login=username or "someone unknown",
        url=link(f"{web_url}/-/commit/{after}" if isinstance(web_url, str) and after != ZERO_SHA else ""),
        details={
            "before": payload.get("before"),
            "deleted": after == ZERO_SHA,
            "rules": [rule.pattern for rule in rules],
            "delivery": delivery.event_uuid,
            "person": person.username if person else None,
        },
        source="gitlab",
    )
