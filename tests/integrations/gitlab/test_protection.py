"""Protected environments must require the bot's approval, protected branches must match the portal's
rules, pushes by people a rule does not name are flagged, and check_gitlab explains what is missing."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from compliance.models import Violation
from deployments.integrations.gitlab import protection
from deployments.integrations.gitlab.client import GitLabClient, is_instance_url
from deployments.integrations.gitlab.models import AuditOutcome, GitLabBranchRule, GitLabProtectionAudit
from deployments.integrations.gitlab.setup_check import check_gitlab
from portal import outbound
from tests.integrations.gitlab.conftest import PROJECT, push_event, send
from tests.integrations.gitlab.fake import BOT

pytestmark = pytest.mark.django_db


def protect_environment(gitlab, *, bot_rule=True):
    rules = [{"id": 1, "user_id": 12, "group_id": None, "access_level": None, "required_approvals": 1}]
    if bot_rule:
        rules.append(
            {
                "id": 2,
                "user_id": BOT["id"],
                "group_id": None,
                "access_level": None,
                "access_level_description": BOT["name"],
                "required_approvals": 1,
            }
        )
    gitlab.protected_environments[(PROJECT, "production")] = {
        "name": "production",
        "deploy_access_levels": [{"access_level": 40, "access_level_description": "Maintainers"}],
        "required_approval_count": 0,
        "approval_rules": rules,
    }


def protect_main(gitlab, *, force=False, level=40):
    gitlab.protected_branches[PROJECT] = [
        {
            "id": 1,
            "name": "main",
            "allow_force_push": force,
            "code_owner_approval_required": False,
            "push_access_levels": [{"access_level": level, "access_level_description": "Maintainers"}],
            "merge_access_levels": [{"access_level": 40}],
        }
    ]


def test_an_environment_requiring_the_bot_is_compliant_and_one_without_is_drift(gitlab, production, project):
    protect_environment(gitlab)
    protection.audit_all()
    assert GitLabProtectionAudit.objects.get(kind="environment").outcome == AuditOutcome.COMPLIANT
    protect_environment(gitlab, bot_rule=False)
    protection.audit_all()
    latest = GitLabProtectionAudit.objects.filter(kind="environment").first()
    assert latest.outcome == AuditOutcome.DRIFT and "portal-bot" in latest.differences[0]


def test_a_branch_open_to_developers_or_force_pushes_is_drift(gitlab, production, project):
    GitLabBranchRule.objects.create(project=project, pattern="main")
    protect_environment(gitlab)
    protect_main(gitlab)
    protection.audit_all()
    assert GitLabProtectionAudit.objects.get(kind="branch").outcome == AuditOutcome.COMPLIANT
    protect_main(gitlab, force=True, level=30)
    protection.audit_all()
    audit = GitLabProtectionAudit.objects.filter(kind="branch").first()
    assert audit.outcome == AuditOutcome.DRIFT and len(audit.differences) == 2
    assert Violation.objects.filter(kind="branch_protection_drift", source="gitlab").exists()


def test_an_unprotected_branch_is_drift(gitlab, production, project):
    GitLabBranchRule.objects.create(project=project, pattern="release/*")
    protect_environment(gitlab)
    protect_main(gitlab)
    protection.audit_all()
    assert GitLabProtectionAudit.objects.get(kind="branch").differences == ["not protected on GitLab"]


def test_a_push_by_someone_the_rule_does_not_name_is_flagged(
    client, gitlab, production, project, bob, django_capture_on_commit_callbacks
):
    rule = GitLabBranchRule.objects.create(project=project, pattern="main")
    rule.allowed_pushers.add(bob)
    with django_capture_on_commit_callbacks(execute=True):
        send(client, "Push Hook", push_event(gitlab, username="bob-gl"))
    assert not Violation.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        send(client, "Push Hook", push_event(gitlab, username="mallory-gl"))
    violation = Violation.objects.get(kind="unauthorized_push")
    assert violation.source == "gitlab" and violation.evidence["pusher"] == "mallory-gl"


def test_a_push_to_an_unruled_branch_is_ignored(
    client, gitlab, production, project, django_capture_on_commit_callbacks
):
    GitLabBranchRule.objects.create(project=project, pattern="main")
    with django_capture_on_commit_callbacks(execute=True):
        send(client, "Push Hook", push_event(gitlab, username="mallory-gl", branch="feature/x"))
    assert not Violation.objects.exists()


def test_check_gitlab_passes_when_everything_is_set_up(gitlab, production, project, settings):
    protect_environment(gitlab)
    gitlab.hooks[PROJECT] = [
        {
            "id": 1,
            "url": "https://portal.example.com/webhooks/gitlab/",
            "deployment_events": True,
            "pipeline_events": True,
            "job_events": True,
            "push_events": True,
        }
    ]
    assert all(f.ok for f in check_gitlab()), check_gitlab()
    call_command("check_gitlab")


def test_check_gitlab_names_each_missing_piece(gitlab, production, project, settings):
    protect_environment(gitlab, bot_rule=False)
    gitlab.hooks[PROJECT] = [
        {
            "id": 1,
            "url": "https://portal.example.com/webhooks/gitlab/",
            "deployment_events": True,
            "pipeline_events": False,
            "job_events": True,
            "push_events": True,
        }
    ]
    settings.GITLAB_WEBHOOK_SECRET = ""
    problems = [f.message for f in check_gitlab() if not f.ok]
    assert any("GITLAB_WEBHOOK_SECRET" in p for p in problems)
    assert any("no approval rule names the portal's bot user" in p for p in problems)
    assert any("lacks pipeline_events" in p for p in problems)
    with pytest.raises(CommandError):
        call_command("check_gitlab")


def test_check_gitlab_without_token_or_project(db, settings, production):
    settings.GITLAB_TOKEN = ""
    [*_, last] = check_gitlab()
    assert not last.ok and "GITLAB_TOKEN" in last.message


def test_check_gitlab_says_when_a_gitlab_service_has_no_project(gitlab, production):
    problems = [f.message for f in check_gitlab() if not f.ok]
    assert problems == ["billing-worker: no GitLab project configured (admin → GitLab projects)."]


def test_check_gitlab_reports_a_rejected_token(gitlab, production, project, settings):
    settings.GITLAB_TOKEN = "glpat-revoked"
    [*_, last] = check_gitlab()
    assert not last.ok and "401" in last.message and "glpat" not in last.message


def test_the_client_only_calls_the_configured_instance(gitlab, settings):
    assert is_instance_url(gitlab.url + "/api/v4/user")
    assert not is_instance_url(gitlab.url.rsplit(":", 1)[0] + ":1/api/v4/user")
    with GitLabClient() as client, pytest.raises(outbound.OutboundRefused):
        client.session.get(gitlab.url.rsplit(":", 1)[0] + ":1/api/v4/user")
