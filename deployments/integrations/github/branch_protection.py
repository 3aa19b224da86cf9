"""Audit (and, where an administrator switched enforcement on, apply) branch protection on GitHub.

For each ``BranchProtectionRule``: find the repository's installation, list its branches that
match the pattern, read each branch's protection, compare it with the rule and record a
``BranchProtectionAudit`` with the differences. With ``enforce`` on, a branch that drifted gets
the rule's protection with ``PUT /repos/{owner}/{repo}/branches/{branch}/protection``.
"""

from __future__ import annotations

import fnmatch
import logging

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q

from deployments.detection import findings as detection

from .client import GitHubClient, GitHubError, installation_for_repository
from .models import AuditOutcome, BranchProtectionAudit, BranchProtectionRule

logger = logging.getLogger(__name__)


def expected_push_logins(rule: BranchProtectionRule) -> list[str]:
    """GitHub logins of the people (directly or through groups) allowed to push."""
    users = (
        get_user_model()
        .objects.filter(
            Q(pk__in=rule.allowed_push_users.values("pk")) | Q(groups__in=rule.allowed_push_groups.values("pk")),
            is_active=True,
        )
        .exclude(github_login="")
    )
    return sorted({login.lower() for login in users.values_list("github_login", flat=True)})


def _enabled(actual: dict, key: str) -> bool:
    value = actual.get(key)
    return bool(value.get("enabled")) if isinstance(value, dict) else bool(value)


def differences(rule: BranchProtectionRule, actual: dict | None) -> list[dict]:
    """How GitHub's protection (``actual``, None when unprotected) falls short of ``rule``."""
    if actual is None:
        return [{"setting": "protection", "expected": "protected", "actual": "not protected"}]
    diffs: list[dict] = []

    def differ(setting: str, expected, found) -> None:
        diffs.append({"setting": setting, "expected": expected, "actual": found})

    reviews = actual.get("required_pull_request_reviews") or {}
    count = int(reviews.get("required_approving_review_count") or 0) if reviews else 0
    if rule.required_approving_reviews and (not reviews or count < rule.required_approving_reviews):
        differ("required_approving_review_count", rule.required_approving_reviews, count if reviews else None)
    if rule.dismiss_stale_reviews and not reviews.get("dismiss_stale_reviews"):
        differ("dismiss_stale_reviews", True, bool(reviews.get("dismiss_stale_reviews")))
    if rule.require_code_owner_reviews and not reviews.get("require_code_owner_reviews"):
        differ("require_code_owner_reviews", True, bool(reviews.get("require_code_owner_reviews")))

    checks = actual.get("required_status_checks") or {}
    contexts = set(checks.get("contexts") or []) | {
        c.get("context") for c in checks.get("checks") or [] if isinstance(c, dict)
    }
    missing = sorted(set(rule.required_status_checks or []) - contexts)
    if missing:
        differ("required_status_checks", sorted(rule.required_status_checks), sorted(c for c in contexts if c))
    if rule.required_status_checks and rule.strict_status_checks and not checks.get("strict"):
        differ("required_status_checks.strict", True, bool(checks.get("strict")))

    if rule.enforce_admins and not _enabled(actual, "enforce_admins"):
        differ("enforce_admins", True, False)
    if not rule.allow_force_pushes and _enabled(actual, "allow_force_pushes"):
        differ("allow_force_pushes", False, True)
    if not rule.allow_deletions and _enabled(actual, "allow_deletions"):
        differ("allow_deletions", False, True)

    if rule.restrict_pushers:
        restrictions = actual.get("restrictions")
        expected = expected_push_logins(rule)
        if not restrictions:
            differ("restrictions", {"users": expected}, None)
        else:
            users = sorted({(u.get("login") or "").lower() for u in restrictions.get("users") or []})
            teams = sorted(t.get("slug") or "" for t in restrictions.get("teams") or [])
            if users != expected or teams:
                differ("restrictions", {"users": expected, "teams": []}, {"users": users, "teams": teams})
    return diffs


def protection_body(rule: BranchProtectionRule) -> dict:
    """The documented body of ``PUT /repos/{owner}/{repo}/branches/{branch}/protection``."""
    return {
        "required_status_checks": (
            {"strict": rule.strict_status_checks, "contexts": list(rule.required_status_checks)}
            if rule.required_status_checks
            else None
        ),
        "enforce_admins": rule.enforce_admins,
        "required_pull_request_reviews": (
            {
                "dismiss_stale_reviews": rule.dismiss_stale_reviews,
                "require_code_owner_reviews": rule.require_code_owner_reviews,
                "required_approving_review_count": rule.required_approving_reviews,
            }
            if rule.required_approving_reviews
            else None
        ),
        "restrictions": (
            {"users": expected_push_logins(rule), "teams": [], "apps": []} if rule.restrict_pushers else None
        ),
        "allow_force_pushes": rule.allow_force_pushes,
        "allow_deletions": rule.allow_deletions,
    }


def _has_glob(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


def _record(rule, branch, outcome, diffs=(), detail="") -> BranchProtectionAudit:
    with transaction.atomic():
        audit = BranchProtectionAudit.objects.create(
            rule=rule, branch=branch[:255], outcome=outcome, differences=list(diffs), detail=detail[:2000]
        )
    if diffs:
        _report_drift(audit)
    return audit


def _report_drift(audit: BranchProtectionAudit) -> None:
    """Hand drift to monitoring (``deployments.detection.findings``), which opens a violation."""
    unprotected = any(d["setting"] == "protection" for d in audit.differences)
    expected = {d["setting"]: d["expected"] for d in audit.differences}
    actual = {} if unprotected else {d["setting"]: d["actual"] for d in audit.differences}
    repository = audit.rule.service.repository
    try:
        detection.report_branch_protection_drift(
            repository=repository,
            branch=audit.branch,
            expected=expected,
            actual=actual,
            url=f"https://github.com/{repository}/settings/branches",
            source="github",
        )
    except Exception:  # the audit row is kept whatever monitoring does
        logger.exception("Monitoring could not take the drift of audit #%s", audit.pk)


def audit_rule(rule: BranchProtectionRule, *, client: GitHubClient | None = None) -> list[BranchProtectionAudit]:
    """Audit every branch matching ``rule``; apply the rule where it drifted and enforcement is on."""
    repository = rule.service.repository
    try:
        client = client or GitHubClient(installation_for_repository(repository))
        if _has_glob(rule.pattern):
            names = [b.get("name", "") for b in client.branches(repository)]
            branches = sorted(n for n in names if n and fnmatch.fnmatchcase(n, rule.pattern))
        else:
            branches = [rule.pattern]
    except GitHubError as exc:
        return [_record(rule, rule.pattern, AuditOutcome.ERROR, detail=str(exc))]
    if not branches:
        return [_record(rule, rule.pattern, AuditOutcome.COMPLIANT, detail="No branch matches this pattern yet.")]
    audits = []
    for branch in branches:
        try:
            actual = client.branch_protection(repository, branch)
        except GitHubError as exc:
            audits.append(_record(rule, branch, AuditOutcome.ERROR, detail=str(exc)))
            continue
        diffs = differences(rule, actual)
        if not diffs:
            audits.append(_record(rule, branch, AuditOutcome.COMPLIANT))
            continue
        if not rule.enforce:
            audits.append(_record(rule, branch, AuditOutcome.DRIFT, diffs))
            continue
        try:
            client.put_branch_protection(repository, branch, protection_body(rule))
        except GitHubError as exc:
            audits.append(_record(rule, branch, AuditOutcome.DRIFT, diffs, detail=f"Enforcement failed: {exc}"))
            continue
        audits.append(_record(rule, branch, AuditOutcome.ENFORCED, diffs, detail="The rule was applied on GitHub."))
    return audits


def audit_all() -> int:
    """Audit every rule (periodic task). Returns the number of branches audited."""
    count = 0
    rules = BranchProtectionRule.objects.select_related("service").order_by("service__name", "pattern")
    for rule in rules:
        count += len(audit_rule(rule))
    return count
