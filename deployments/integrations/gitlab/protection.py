"""Audit what GitLab protects against what the portal needs (``deployments.gitlab.audit_protection``, hourly).

- Every protected environment of a GitLab service must be a protected environment on GitLab whose
  approval rules require an approval from the portal's bot user (the token's user), so no
  deployment there proceeds without the portal.
- Every branch matching a portal branch rule must be protected on GitLab, with force pushes off
  unless the rule allows them, and no push access above the rule's level.

Each check is kept as a ``GitLabProtectionAudit`` row; branch drift opens a branch-protection finding.
With the project's ``enforce_protection`` on, drift is corrected through the API (the branch protected
with the rule's levels, the bot added to the environment's approval rules) and the row says
``enforced`` — or ``drift`` with the reason when GitLab refused the correction.
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


def enforce_environment(client: GitLabClient, project: GitLabProject, name: str, protected, bot: dict) -> None:
    """Protect the environment, or add (or fix) the bot's approval rule, so the portal's approval is required."""
    if protected is None:
        client.protect_environment(
            project.project_path, name, approval_rules=[{"user_id": bot["id"], "required_approvals": 1}]
        )
        return
    ours = [r for r in protected.get("approval_rules") or [] if isinstance(r, dict) and r.get("user_id") == bot["id"]]
    rule = {"id": ours[0]["id"], "required_approvals": 1} if ours else {"user_id": bot["id"], "required_approvals": 1}
    client.update_protected_environment(project.project_path, name, approval_rules=[rule])


def enforce_branch(client: GitLabClient, project: GitLabProject, rule, branch: dict | None) -> None:
    """Protect the branch (or the rule's wildcard) with the rule's push level, force pushes as the rule allows.

    GitLab's API cannot change a protected branch's access levels in place (outside Premium's
    ``allowed_to_push`` lists), so a drifted protection is removed and created again at once.
    """
    expected = branch_expected(rule, branch_state(branch))
    push_level = expected["push_access_level"] if branch is not None else rule.push_access_level
    merge_levels = [
        a.get("access_level")
        for a in (branch or {}).get("merge_access_levels") or []
        if isinstance(a, dict) and isinstance(a.get("access_level"), int) and a.get("access_level") > 0
    ]
    merge_level = min(merge_levels) if merge_levels else 40
    if branch is None:
        client.protect_branch(
            project.project_path,
            rule.pattern,
            push_access_level=push_level,
            merge_access_level=merge_level,
            allow_force_push=False,
        )
        return
    name = str(branch.get("name"))
    actual = branch_state(branch)
    client.unprotect_branch(project.project_path, name)
    try:
        client.protect_branch(
            project.project_path,
            name,
            push_access_level=push_level,
            merge_access_level=merge_level,
            allow_force_push=expected["allow_force_push"],
        )
    except GitLabError:
        # Never leave the branch unprotected: put back what it had (drifted, but protected), then report.
        try:
            client.protect_branch(
                project.project_path,
                name,
                push_access_level=actual["push_access_level"],
                merge_access_level=merge_level,
                allow_force_push=actual["allow_force_push"],
            )
        except GitLabError:
            logger.error("GitLab branch %s of %s is left unprotected after a failed correction", name, project)
        raise


def _record(project, kind, name, problems, enforce) -> GitLabProtectionAudit:
    """Keep one audit row; with enforcement on, correct the drift first and say whether that worked."""
    outcome, detail = (AuditOutcome.DRIFT if problems else AuditOutcome.COMPLIANT), ""
    if problems and project.enforce_protection:
        try:
            enforce()
        except GitLabError as exc:
            detail = f"Enforcement failed: {exc}"[:2000]
        else:
            outcome, detail = AuditOutcome.ENFORCED, "The portal's rule was applied on GitLab."
    return GitLabProtectionAudit.objects.create(
        project=project, kind=kind, name=name, outcome=outcome, differences=problems, detail=detail
    )


def audit_project(client: GitLabClient, project: GitLabProject, bot: dict) -> list[GitLabProtectionAudit]:
    audits = []
    for environment in protected_environments(project):
        protected = client.protected_environment(project.project_path, environment.name)
        problems = environment_problems(protected, bot)
        audits.append(
            _record(
                project,
                "environment",
                environment.name,
                problems,
                lambda name=environment.name, protected=protected: enforce_environment(
                    client, project, name, protected, bot
                ),
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
                _record(
                    project,
                    "branch",
                    rule.pattern,
                    problems,
                    lambda rule=rule, branch=branch: enforce_branch(client, project, rule, branch),
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
