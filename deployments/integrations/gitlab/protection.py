"""Audit what GitLab protects against what the portal needs (``deployments.gitlab.audit_protection``, hourly).

- Every protected environment of a GitLab service must be a protected environment on GitLab whose
  approval rules require an approval from the portal's bot user (the token's user), so no
  deployment there proceeds without the portal.
- Every branch matching a portal branch rule must be protected on GitLab, with force pushes off
  unless the rule allows them, and no push access above the rule's level.

Each check is kept as a ``GitLabProtectionAudit`` row; drift opens a branch-protection finding.
"""

from __future__ import annotations

import fnmatch
import logging

from deployments.detection import findings as detection

from .client import GitLabClient, GitLabError
from .intake import protected_environments
from .models import AuditOutcome, GitLabProject, GitLabProtectionAudit

logger = logging.getLogger(__name__)


def environment_problems(protected: dict | None, bot: dict) -> list[str]:
    if protected is None:
        return ["not a protected environment on GitLab"]
    rules = [r for r in protected.get("approval_rules") or [] if isinstance(r, dict)]
    ours = [r for r in rules if r.get("user_id") == bot.get("id")]
    if not ours:
        return [f"no approval rule names the portal's bot user {bot.get('username')!r}"]
    if not any(int(r.get("required_approvals") or 0) >= 1 for r in ours):
        return ["the bot's approval rule requires no approval"]
    return []


def branch_state(branch: dict | None) -> dict:
    """What GitLab has for a protected branch ({} when unprotected)."""
    if branch is None:
        return {}
    levels = [a.get("access_level") for a in branch.get("push_access_levels") or [] if isinstance(a, dict)]
    people = [lvl for lvl in levels if isinstance(lvl, int) and lvl > 0]
    return {
        "protected": True,
        "allow_force_push": bool(branch.get("allow_force_push")),
        "push_access_level": min(people) if people else 0,
    }


def branch_expected(rule, actual: dict) -> dict:
    """What the rule needs, in the same shape (a stricter push level than the rule's is fine)."""
    level = actual.get("push_access_level", 0)
    too_wide = level > 0 and (rule.push_access_level == 0 or level < rule.push_access_level)
    return {
        "protected": True,
        "allow_force_push": bool(actual.get("allow_force_push")) and rule.allow_force_push,
        "push_access_level": rule.push_access_level if too_wide else level,
    }


def branch_problems(rule, branch: dict | None) -> list[str]:
    actual = branch_state(branch)
    if not actual:
        return ["not protected on GitLab"]
    expected = branch_expected(rule, actual)
    problems = []
    if actual["allow_force_push"] != expected["allow_force_push"]:
        problems.append("force pushes are allowed")
    if actual["push_access_level"] != expected["push_access_level"]:
        problems.append(f"push access level {actual['push_access_level']} is wider than {rule.push_access_level}")
    return problems


def audit_project(client: GitLabClient, project: GitLabProject, bot: dict) -> list[GitLabProtectionAudit]:
    audits = []
    for environment in protected_environments(project):
        problems = environment_problems(client.protected_environment(project.project_path, environment.name), bot)
        audits.append(
            GitLabProtectionAudit.objects.create(
                project=project,
                kind="environment",
                name=environment.name,
                outcome=AuditOutcome.DRIFT if problems else AuditOutcome.COMPLIANT,
                differences=problems,
            )
        )
    rules = list(project.branch_rules.all())
    if rules:
        branches = client.protected_branches(project.project_path)
        for rule in rules:
            matching = [
                b
                for b in branches
                if fnmatch.fnmatchcase(str(b.get("name")), rule.pattern) or b.get("name") == rule.pattern
            ]
            branch = matching[0] if matching else None
            problems = branch_problems(rule, branch)
            audits.append(
                GitLabProtectionAudit.objects.create(
                    project=project,
                    kind="branch",
                    name=rule.pattern,
                    outcome=AuditOutcome.DRIFT if problems else AuditOutcome.COMPLIANT,
                    differences=problems,
                )
            )
            if problems:
                try:
                    detection.report_branch_protection_drift(
                        repository=project.project_path,
                        branch=rule.pattern,
                        expected=branch_expected(rule, branch_state(branch)),
                        actual=branch_state(branch),
                        source="gitlab",
                    )
                except Exception:  # monitoring must not stop the audit
                    logger.exception("Monitoring could not take GitLab drift of %s", project.project_path)
    return audits


def audit_all() -> int:
    from django.conf import settings

    if not settings.GITLAB_TOKEN:
        return 0
    done = 0
    with GitLabClient() as client:
        try:
            bot = client.current_user()
        except GitLabError as exc:
            logger.warning("Cannot audit GitLab protection: %s", exc)
            return 0
        for project in GitLabProject.objects.filter(is_active=True).select_related("service"):
            try:
                done += len(audit_project(client, project, bot))
            except GitLabError as exc:
                GitLabProtectionAudit.objects.create(
                    project=project, kind="environment", name="*", outcome=AuditOutcome.ERROR, differences=[str(exc)]
                )
    return done
