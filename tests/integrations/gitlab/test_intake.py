"""Intake: the poll finds deployments waiting for approval and makes one request each, with the
person mapped by GitLab username, the change set's authors, and checks mapped to the policy's names."""

from __future__ import annotations

import pytest

from deployments.choices import RequestSource, RequestStatus
from deployments.integrations.gitlab import intake
from deployments.integrations.gitlab.changes import check_states, commit_identity
from deployments.integrations.gitlab.models import GitLabDeploymentIntake
from deployments.models import DeploymentRequest, Refusal
from tests.integrations.gitlab.conftest import BASE_SHA, PIPELINE, PROJECT, SHA, waiting_deployment
from tests.integrations.gitlab.fake import TOKEN

pytestmark = pytest.mark.django_db


def test_a_blocked_deployment_becomes_one_request_with_its_ids(gitlab, production, project, bob):
    deployment = waiting_deployment(gitlab, production)
    counts = intake.poll_project(project)
    assert counts == {"blocked": 1, "created": 1, "refreshed": 0}
    request = DeploymentRequest.objects.get()
    assert (request.sha, request.ref, request.source) == (SHA, "main", RequestSource.GITLAB)
    assert request.requester == bob and request.requester_login == "bob-gl"
    assert request.external_ids == {
        "gitlab_project": PROJECT,
        "gitlab_project_id": 4242,
        "gitlab_deployment_id": deployment["id"],
        "gitlab_deployment_iid": 1,
        "gitlab_environment": "production",
        "gitlab_job_id": deployment["deployable"]["id"],
        "gitlab_pipeline_id": PIPELINE,
    }
    assert request.source_url == deployment["deployable"]["web_url"]
    [listing] = gitlab.calls_to(r"/projects/acme%2Fbilling-worker/deployments$", "GET")[:1]
    assert listing.query["status"] == "blocked" and listing.query["environment"] == "production"
    assert all(c.headers["Private-Token"] == TOKEN for c in gitlab.calls)


def test_polling_again_creates_nothing_more(gitlab, production, project, bob):
    waiting_deployment(gitlab, production)
    intake.poll_project(project)
    assert intake.poll_project(project)["created"] == 0
    assert DeploymentRequest.objects.count() == 1 and GitLabDeploymentIntake.objects.count() == 1


def test_change_authors_come_from_commits_committers_and_merge_requests(gitlab, production, project, bob):
    waiting_deployment(gitlab, production)
    intake.poll_project(project)
    request = DeploymentRequest.objects.get()
    # carl authored, bob committed (GitLab's private e-mail names his username), dana opened the MR.
    assert request.change_authors == ["bob-gl", "carl@example.com", "dana-gl"]
    change_set = request.change_set
    assert change_set["base"] == BASE_SHA and change_set["head"] == SHA
    assert [c["sha"] for c in change_set["commits"]] == [SHA]
    assert (change_set["files_changed"], change_set["additions"], change_set["deletions"]) == (1, 2, 1)
    assert change_set["merge_requests"][0]["iid"] == 12 and change_set["merge_requests"][0]["author"] == "dana-gl"
    [compare] = gitlab.calls_to(r"/repository/compare$")
    assert compare.query == {"from": BASE_SHA, "to": SHA}


def test_checks_are_mapped_to_the_policy_names_and_make_the_request_decidable(gitlab, production, project, bob):
    waiting_deployment(gitlab, production)
    intake.poll_project(project)
    request = DeploymentRequest.objects.get()
    assert request.status == RequestStatus.AWAITING_APPROVAL
    for name in ("unit", "integration", "lint", "security-scan"):
        assert request.checks[name] == "success"
    assert "deploy-production" not in request.checks  # the blocked job itself is no check


def test_a_failed_mapped_job_blocks_the_request(gitlab, production, project, bob):
    deployed = waiting_deployment(gitlab, production, checks=False)
    from tests.integrations.gitlab.conftest import passing_pipeline

    passing_pipeline(gitlab, lint="failed")
    intake.poll_project(project)
    request = DeploymentRequest.objects.get(external_ids__gitlab_deployment_id=deployed["id"])
    assert request.checks["lint"] == "failure"
    assert request.status == RequestStatus.BLOCKED


def test_pending_jobs_leave_the_request_waiting_until_a_later_poll(gitlab, production, project, bob):
    waiting_deployment(gitlab, production, checks=False)
    job = gitlab.add_job(PROJECT, name="unit-tests 1/2", status="running", pipeline_id=PIPELINE, sha=SHA)
    from tests.integrations.gitlab.conftest import passing_pipeline

    intake.poll_project(project)
    request = DeploymentRequest.objects.get()
    assert request.status == RequestStatus.PENDING_CHECKS and request.checks["unit"] == "pending"
    job["status"] = "success"
    passing_pipeline(gitlab)
    intake.poll_project(project)
    request.refresh_from_db()
    assert request.status == RequestStatus.AWAITING_APPROVAL


def test_the_worst_of_several_mapped_jobs_counts():
    from deployments.integrations.gitlab.models import GitLabProject

    project = GitLabProject(check_mapping={"unit": ["unit-tests*"]})
    jobs = [
        {"id": 1, "name": "unit-tests 1/2", "status": "success"},
        {"id": 2, "name": "unit-tests 2/2", "status": "failed"},
        {"id": 3, "name": "lint", "status": "skipped"},
    ]
    assert check_states(project, jobs, []) == {"unit": "failure", "lint": "skipped"}
    retried = [*jobs, {"id": 4, "name": "unit-tests 2/2", "status": "success"}]
    assert check_states(project, retried, [])["unit"] == "success"


def test_gitlab_private_commit_emails_name_the_username():
    assert commit_identity("77-bob-gl@users.noreply.gitlab.com") == "bob-gl"
    assert commit_identity("carl@example.com") == "carl@example.com"


def test_an_unknown_gitlab_user_is_a_visible_gap(gitlab, production, project):
    waiting_deployment(gitlab, production, username="mallory-gl")
    intake.poll_project(project)
    request = DeploymentRequest.objects.get()
    assert request.requester is None and request.requester_login == "mallory-gl"


def test_a_refused_request_is_rejected_on_gitlab_and_not_submitted_again(gitlab, production, project, bob):
    from deployments.models import ApprovalPolicy

    ApprovalPolicy.objects.filter(environment=production).update(allowed_refs=["release/*"])
    deployment = waiting_deployment(gitlab, production)
    intake.poll_project(project)
    assert not DeploymentRequest.objects.exists()
    assert Refusal.objects.filter(action="submit").count() == 1
    [call] = gitlab.calls_to(rf"/deployments/{deployment['id']}/approval$", "POST")
    assert call.json["status"] == "rejected"
    assert "Refused by the deployment authorization portal" in call.json["comment"]
    assert deployment["status"] == "failed"
    deployment["status"] = "blocked"  # even if GitLab still listed it
    intake.poll_project(project)
    assert Refusal.objects.filter(action="submit").count() == 1


def test_a_gitlab_outage_during_the_poll_creates_nothing_and_says_so(gitlab, production, project, bob):
    waiting_deployment(gitlab, production)
    gitlab.fail("deployments", (503, {}))
    assert intake.poll_all() == {"configured": True, "projects": 1, "created": 0, "errors": 1}
    assert not DeploymentRequest.objects.exists()
    assert intake.poll_all()["created"] == 1


def test_deployments_of_other_environments_are_not_taken_in(gitlab, production, project, bob):
    gitlab.add_deployment(PROJECT, "review/feature-x", SHA)
    assert intake.poll_project(project)["blocked"] == 0
    assert not DeploymentRequest.objects.exists()


def test_polling_unchanged_checks_records_no_new_event(gitlab, production, project, bob):
    from deployments.models import RequestEvent

    waiting_deployment(gitlab, production, checks=False)
    gitlab.add_job(PROJECT, name="unit-tests 1/2", status="running", pipeline_id=PIPELINE, sha=SHA)
    for _ in range(3):
        intake.poll_project(project)
    assert RequestEvent.objects.filter(kind="checks_recorded").count() == 1


def test_without_a_token_the_poll_calls_nothing(gitlab, production, project, settings):
    settings.GITLAB_TOKEN = ""
    waiting_deployment(gitlab, production)
    assert intake.poll_all() == {"configured": False}
    assert not gitlab.calls


def test_of_two_waiting_deployments_the_newest_stays_open_and_the_older_is_turned_down(
    gitlab, production, project, bob, django_capture_on_commit_callbacks
):
    older = gitlab.add_deployment(PROJECT, "production", BASE_SHA, pipeline_id=554)
    newer = waiting_deployment(gitlab, production)
    with django_capture_on_commit_callbacks(execute=True):
        intake.poll_project(project)
    by_deployment = {r.external_ids["gitlab_deployment_id"]: r for r in DeploymentRequest.objects.all()}
    assert by_deployment[older["id"]].status == RequestStatus.SUPERSEDED
    assert by_deployment[newer["id"]].status == RequestStatus.AWAITING_APPROVAL
    [rejection] = gitlab.calls_to(rf"/deployments/{older['id']}/approval$", "POST")
    assert rejection.json["status"] == "rejected"
