"""With enforcement on, the protection audit corrects drift on GitLab (protects the branch with the rule's
levels, adds the portal's bot to the environment's approval rules) and records it as enforced; off, it
only reports; a correction GitLab refuses stays drift, with the reason."""

from __future__ import annotations

import pytest

from compliance.models import Violation
from deployments.integrations.gitlab import protection
from deployments.integrations.gitlab.models import AuditOutcome, GitLabBranchRule, GitLabProtectionAudit
from tests.integrations.gitlab.conftest import PROJECT
from tests.integrations.gitlab.fake import BOT
from tests.integrations.gitlab.test_protection import protect_environment, protect_main

pytestmark = pytest.mark.django_db


@pytest.fixture
def enforcing(project):
    project.enforce_protection = True
    project.save()
    return project


def latest(kind: str) -> GitLabProtectionAudit:
    return GitLabProtectionAudit.objects.filter(kind=kind).first()


def bot_rules(gitlab) -> list[dict]:
    found = gitlab.protected_environments[(PROJECT, "production")]
    return [r for r in found["approval_rules"] if r["user_id"] == BOT["id"]]


def test_without_enforcement_drift_is_only_reported(gitlab, production, project):
    protect_environment(gitlab, bot_rule=False)
    protect_main(gitlab, force=True, level=30)
    GitLabBranchRule.objects.create(project=project, pattern="main")
    protection.audit_all()
    assert latest("environment").outcome == AuditOutcome.DRIFT
    assert latest("branch").outcome == AuditOutcome.DRIFT
    assert not [c for c in gitlab.calls if c.method in ("POST", "PUT", "DELETE")]


def test_the_bot_is_added_to_the_environments_approval_rules(gitlab, production, enforcing):
    protect_environment(gitlab, bot_rule=False)
    protection.audit_all()
    audit = latest("environment")
    assert audit.outcome == AuditOutcome.ENFORCED and "portal-bot" in audit.differences[0]
    assert [r["required_approvals"] for r in bot_rules(gitlab)] == [1]
    assert len(gitlab.protected_environments[(PROJECT, "production")]["approval_rules"]) == 2  # others kept
    protection.audit_all()
    assert latest("environment").outcome == AuditOutcome.COMPLIANT


def test_a_bot_rule_requiring_no_approval_is_raised_to_one_and_an_unprotected_environment_protected(
    gitlab, production, enforcing
):
    protect_environment(gitlab)
    bot_rules(gitlab)[0]["required_approvals"] = 0
    protection.audit_all()
    assert latest("environment").outcome == AuditOutcome.ENFORCED
    assert [r["required_approvals"] for r in bot_rules(gitlab)] == [1]
    del gitlab.protected_environments[(PROJECT, "production")]
    protection.audit_all()
    assert latest("environment").outcome == AuditOutcome.ENFORCED
    assert [r["required_approvals"] for r in bot_rules(gitlab)] == [1]


def test_a_drifted_branch_is_protected_again_with_the_rules_levels(gitlab, production, enforcing):
    protect_environment(gitlab)
    protect_main(gitlab, force=True, level=30)
    GitLabBranchRule.objects.create(project=enforcing, pattern="main")
    protection.audit_all()
    audit = latest("branch")
    assert audit.outcome == AuditOutcome.ENFORCED and len(audit.differences) == 2
    [branch] = gitlab.protected_branches[PROJECT]
    assert branch["allow_force_push"] is False
    assert branch["push_access_levels"] == [{"access_level": 40}]
    assert branch["merge_access_levels"] == [{"access_level": 40}]
    assert Violation.objects.filter(kind="branch_protection_drift", source="gitlab").exists()  # still reported
    protection.audit_all()
    assert latest("branch").outcome == AuditOutcome.COMPLIANT


def test_an_unprotected_wildcard_is_protected(gitlab, production, enforcing):
    protect_environment(gitlab)
    GitLabBranchRule.objects.create(project=enforcing, pattern="release/*", push_access_level=0)
    protection.audit_all()
    assert latest("branch").outcome == AuditOutcome.ENFORCED
    [branch] = gitlab.protected_branches[PROJECT]
    assert (branch["name"], branch["push_access_levels"]) == ("release/*", [{"access_level": 0}])


def test_a_refused_correction_stays_drift_with_the_reason(gitlab, production, enforcing):
    protect_environment(gitlab, bot_rule=False)
    gitlab.fail("protect", (403, {}))
    protection.audit_all()
    audit = latest("environment")
    assert audit.outcome == AuditOutcome.DRIFT
    assert audit.detail.startswith("Enforcement failed: PUT protected environment production") and "403" in audit.detail
    assert not bot_rules(gitlab)
    assert "glpat" not in audit.detail


def test_a_branch_whose_new_protection_is_refused_gets_its_old_protection_back(gitlab, production, enforcing):
    protect_environment(gitlab)
    protect_main(gitlab, force=True, level=30)
    GitLabBranchRule.objects.create(project=enforcing, pattern="main")
    gitlab.fail("protect", (0, {}), (500, {}))  # the unprotect passes, the new protection fails
    protection.audit_all()
    audit = latest("branch")
    assert audit.outcome == AuditOutcome.DRIFT and audit.detail.startswith("Enforcement failed: POST protected branch")
    [branch] = gitlab.protected_branches[PROJECT]  # still protected, as it was
    assert branch["push_access_levels"] == [{"access_level": 30}] and branch["allow_force_push"] is True
