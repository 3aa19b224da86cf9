"""Protected branches: audit against GitHub, drift with differences, enforcement, push monitoring."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from deployments.integrations.github import branch_protection
from deployments.integrations.github.models import (
    AuditOutcome,
    BranchProtectionRule,
    DeliveryState,
    GitHubWebhookDelivery,
    MonitoringSignal,
    SignalKind,
)
from tests import factories
from tests.integrations.github.conftest import REPOSITORY, send
from tests.integrations.github.fake import fixture

pytestmark = pytest.mark.django_db


@pytest.fixture
def service(production):
    return production.service


@pytest.fixture
def main_rule(service):
    rule = BranchProtectionRule.objects.create(
        service=service,
        pattern="main",
        required_approving_reviews=2,
        required_status_checks=["unit", "lint"],
        enforce_admins=True,
        restrict_pushers=True,
    )
    releasers = Group.objects.create(name="Release managers")
    rita = factories.UserFactory(username="rita", github_login="rita-gh")
    rita.groups.add(releasers)
    rule.allowed_push_users.add(factories.UserFactory(username="carl", github_login="Carl-GH"))
    rule.allowed_push_groups.add(releasers)
    return rule


def compliant_protection(url):
    base = f"{url}/repos/{REPOSITORY}/branches/main/protection"
    return {
        "url": base,
        "required_status_checks": {
            "url": f"{base}/required_status_checks",
            "strict": True,
            "contexts": ["unit", "lint", "extra"],
            "checks": [],
        },
        "enforce_admins": {"url": f"{base}/enforce_admins", "enabled": True},
        "required_pull_request_reviews": {
            "dismiss_stale_reviews": True,
            "require_code_owner_reviews": False,
            "required_approving_review_count": 2,
        },
        "restrictions": {"users": [{"login": "carl-gh"}, {"login": "rita-gh"}], "teams": [], "apps": []},
        "allow_force_pushes": {"enabled": False},
        "allow_deletions": {"enabled": False},
    }


def test_a_compliant_branch_is_recorded_as_compliant(github, main_rule):
    github.protection[(REPOSITORY, "main")] = compliant_protection(github.url)
    [audit] = branch_protection.audit_rule(main_rule)
    assert audit.outcome == AuditOutcome.COMPLIANT and audit.differences == []
    assert github.calls_to(r"/repos/octo-org/payments-api/installation$")  # found the installation as the App


def test_drift_is_recorded_with_the_differences(github, main_rule):
    protection = compliant_protection(github.url)
    protection["required_pull_request_reviews"]["required_approving_review_count"] = 1
    protection["enforce_admins"]["enabled"] = False
    protection["allow_force_pushes"]["enabled"] = True
    protection["restrictions"]["users"].append({"login": "mallory-gh"})
    github.protection[(REPOSITORY, "main")] = protection
    [audit] = branch_protection.audit_rule(main_rule)
    assert audit.outcome == AuditOutcome.DRIFT
    settings = {d["setting"]: d for d in audit.differences}
    assert settings["required_approving_review_count"] == {
        "setting": "required_approving_review_count",
        "expected": 2,
        "actual": 1,
    }
    assert {"enforce_admins", "allow_force_pushes", "restrictions"} <= set(settings)
    assert not github.calls_to(r"/protection$", "PUT")  # enforcement is off: nothing changed


def test_an_unprotected_branch_is_drift(github, main_rule):
    [audit] = branch_protection.audit_rule(main_rule)
    assert audit.outcome == AuditOutcome.DRIFT
    assert audit.differences == [{"setting": "protection", "expected": "protected", "actual": "not protected"}]


def test_with_enforcement_on_the_rule_is_applied_with_the_documented_body(github, main_rule):
    main_rule.enforce = True
    main_rule.save()
    [audit] = branch_protection.audit_rule(main_rule)
    assert audit.outcome == AuditOutcome.ENFORCED
    [put] = github.calls_to(r"/branches/main/protection$", "PUT")
    assert put.json == {
        "required_status_checks": {"strict": True, "contexts": ["unit", "lint"]},
        "enforce_admins": True,
        "required_pull_request_reviews": {
            "dismiss_stale_reviews": True,
            "require_code_owner_reviews": False,
            "required_approving_review_count": 2,
        },
        "restrictions": {"users": ["carl-gh", "rita-gh"], "teams": [], "apps": []},
        "allow_force_pushes": False,
        "allow_deletions": False,
    }
    # The next audit finds GitHub compliant.
    [again] = branch_protection.audit_rule(main_rule)
    assert again.outcome == AuditOutcome.COMPLIANT, again.differences


def test_a_pattern_audits_every_matching_branch(github, service):
    rule = BranchProtectionRule.objects.create(service=service, pattern="release/*", required_approving_reviews=1)
    github.branch_names[REPOSITORY] = ["main", "release/1.0", "release/2.0", "feature/x"]
    audits = branch_protection.audit_rule(rule)
    assert sorted(a.branch for a in audits) == ["release/1.0", "release/2.0"]
    assert {a.outcome for a in audits} == {AuditOutcome.DRIFT}
    assert github.calls_to(r"/branches/release%2F1\.0/protection$", "GET")


def test_an_app_not_installed_on_the_repository_is_an_audit_error(github, service):
    github.installations.clear()
    rule = BranchProtectionRule.objects.create(service=service, pattern="main")
    [audit] = branch_protection.audit_rule(rule)
    assert audit.outcome == AuditOutcome.ERROR and "not installed" in audit.detail


def test_the_periodic_task_audits_all_rules(github, main_rule):
    from deployments.integrations.github.tasks import audit_branch_protection

    assert audit_branch_protection.delay().get() == 1


# --- monitoring signals from webhooks -------------------------------------------------------


def push(client, capture, **changes):
    payload = fixture("push")
    payload.update(changes)
    with capture(execute=True):
        assert send(client, "push", payload).status_code == 202
    return GitHubWebhookDelivery.objects.latest("id")


def test_a_push_by_someone_not_authorized_is_a_signal(client, github, main_rule, django_capture_on_commit_callbacks):
    delivery = push(client, django_capture_on_commit_callbacks)
    assert delivery.state == DeliveryState.PROCESSED
    signal = MonitoringSignal.objects.get()
    assert signal.kind == SignalKind.UNAUTHORIZED_PUSH and signal.actor_login == "mallory-gh"
    assert signal.branch == "main" and signal.service == main_rule.service and signal.delivery == delivery


def test_a_push_by_an_authorized_pusher_is_not(client, github, main_rule, django_capture_on_commit_callbacks):
    push(client, django_capture_on_commit_callbacks, sender={"login": "rita-gh", "id": 5, "type": "User"})
    push(client, django_capture_on_commit_callbacks, sender={"login": "carl-gh", "id": 6, "type": "User"})
    assert not MonitoringSignal.objects.exists()


def test_a_force_push_is_a_signal_even_from_an_authorized_pusher(
    client, github, main_rule, django_capture_on_commit_callbacks
):
    push(client, django_capture_on_commit_callbacks, forced=True, sender={"login": "rita-gh", "id": 5})
    assert MonitoringSignal.objects.get().kind == SignalKind.FORCE_PUSH


def test_pushes_to_other_branches_are_stored_and_ignored(client, github, main_rule, django_capture_on_commit_callbacks):
    delivery = push(client, django_capture_on_commit_callbacks, ref="refs/heads/feature/x")
    assert delivery.state == DeliveryState.IGNORED and not MonitoringSignal.objects.exists()


def test_a_branch_protection_change_on_github_is_a_signal(
    client, github, main_rule, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        send(client, "branch_protection_rule", fixture("branch_protection_rule.edited"))
    signal = MonitoringSignal.objects.get()
    assert signal.kind == SignalKind.PROTECTION_CHANGED and signal.actor_login == "mallory-gh"
    assert signal.details["changes"]["admin_enforced"] == {"from": True}


def test_signals_and_drift_open_violations(client, github, main_rule, django_capture_on_commit_callbacks):
    from compliance.models import Violation, ViolationKind

    push(client, django_capture_on_commit_callbacks)
    pushed = Violation.objects.get(kind=ViolationKind.UNAUTHORIZED_PUSH)
    assert pushed.source == "github" and REPOSITORY in pushed.subject
    assert pushed.evidence["pusher"] == "mallory-gh" or "mallory-gh" in str(pushed.evidence)
    assert "7638417db6d59f3c431d3e1f261cc637155684cd" in str(pushed.evidence)
    branch_protection.audit_rule(main_rule)  # unprotected: drift
    drift = Violation.objects.get(kind=ViolationKind.BRANCH_PROTECTION_DRIFT)
    assert drift.evidence["actual"] == {} and drift.evidence["expected"] == {"protection": "protected"}
