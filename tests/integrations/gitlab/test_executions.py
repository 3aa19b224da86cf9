"""Deployment events become executions; reconciliation finds what an event missed; and the whole
path — waiting on GitLab → portal decision → GitLab told → execution → authorization-log row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from compliance.models import Violation
from compliance.reports import registry
from compliance.reports.registry import Filters
from deployments.choices import DeliveryStatus, ExecutionStatus, RequestStatus
from deployments.detection import reconciliation as core_reconciliation
from deployments.integrations import reconciliation_sources
from deployments.integrations.gitlab import intake
from deployments.integrations.gitlab.models import DeliveryState, GitLabProject, GitLabWebhookDelivery
from deployments.integrations.gitlab.reconciliation import reconcile_gitlab_deployments
from deployments.models import DecisionDelivery, DeploymentRequest, Execution
from tests import factories
from tests.integrations.gitlab.conftest import PROJECT, SHA, deployment_event, send, waiting_deployment

pytestmark = pytest.mark.django_db


def test_waiting_then_decision_then_gitlab_told_then_execution_then_report_row(
    client, gitlab, production, project, bob, approvers, django_capture_on_commit_callbacks
):
    GitLabProject.objects.update(approve_and_deploy=True)
    deployment = waiting_deployment(gitlab, production)
    # 1. Waiting on GitLab: the pipeline's event makes the portal look, and the request is ready.
    with django_capture_on_commit_callbacks(execute=True):
        send(client, "Pipeline Hook", {"object_kind": "pipeline", "project": {"path_with_namespace": PROJECT}})
    request = DeploymentRequest.objects.get()
    assert request.status == RequestStatus.AWAITING_APPROVAL
    # 2. The portal's decision: two approvers who are not change authors.
    for person in approvers[:2]:
        with django_capture_on_commit_callbacks(execute=True):
            factories.approve(request, person, comment="Reviewed the refund rounding.")
    request.refresh_from_db()
    assert request.status == RequestStatus.APPROVED
    # 3. GitLab told: the bot's approval, and the manual job played.
    delivery = DecisionDelivery.objects.get(request=request, provider="gitlab")
    assert delivery.status == DeliveryStatus.DELIVERED
    assert deployment["approvals"][0]["status"] == "approved" and deployment["deployable"]["status"] == "pending"
    # 4. Execution: GitLab's deployment events as it runs and succeeds.
    for status in ("running", "success"):
        gitlab.set_status(deployment, status)
        with django_capture_on_commit_callbacks(execute=True):
            assert send(client, "Deployment Hook", deployment_event(gitlab, deployment, status)).status_code == 202
    execution = Execution.objects.get(external_id=f"gitlab-deployment-{deployment['id']}")
    assert (execution.status, execution.sha, execution.authorized) == (ExecutionStatus.SUCCESS, SHA, True)
    assert execution.request == request
    request.refresh_from_db()
    assert request.status == RequestStatus.DEPLOYED
    assert not Violation.objects.exists()
    # 5. The authorization log's row.
    [row] = [
        r for r in registry.get("deployment-authorization-log").iter_rows(Filters()) if r["request_id"] == request.pk
    ]
    assert row["source"] == "gitlab" and row["requester"] == "bob" and row["status"] == RequestStatus.DEPLOYED
    assert row["execution_status"] == "success" and row["deployed_sha"] == SHA and row["unauthorized"] is False
    assert row["delivery"].startswith("gitlab approved delivered at ")
    assert row["approvals"].count(" approve at ") == 2
    assert row["change_authors"] == "bob-gl; carl@example.com; dana-gl"


def test_a_deployment_nobody_approved_opens_a_violation(
    client, gitlab, production, project, bob, django_capture_on_commit_callbacks
):
    deployment = gitlab.add_deployment(PROJECT, "production", SHA, status="running")
    with django_capture_on_commit_callbacks(execute=True):
        send(client, "Deployment Hook", deployment_event(gitlab, deployment, "running"))
    execution = Execution.objects.get()
    assert execution.authorized is False and execution.status == ExecutionStatus.IN_PROGRESS
    assert Violation.objects.filter(kind="unauthorized_deployment").exists()


def test_a_rejected_deployment_that_never_ran_is_no_execution(
    client, gitlab, production, project, bob, django_capture_on_commit_callbacks
):
    deployment = gitlab.add_deployment(PROJECT, "production", SHA, status="blocked")
    gitlab.set_status(deployment, "failed", started=False)
    with django_capture_on_commit_callbacks(execute=True):
        send(client, "Deployment Hook", deployment_event(gitlab, deployment, "failed"))
    assert GitLabWebhookDelivery.objects.get().state == DeliveryState.IGNORED
    assert not Execution.objects.exists() and not Violation.objects.exists()


def test_reconciliation_records_a_deployment_whose_event_was_lost(gitlab, production, project, bob):
    deployment = gitlab.add_deployment(PROJECT, "production", SHA, status="success")
    gitlab.add_deployment(PROJECT, "production", SHA, status="blocked")  # nothing ran
    rejected = gitlab.add_deployment(PROJECT, "production", SHA, status="blocked")
    gitlab.set_status(rejected, "canceled", started=False)
    counts = reconcile_gitlab_deployments()
    assert counts["recorded"] == 1 and counts["not_started"] == 2 and counts["errors"] == 0
    execution = Execution.objects.get()
    assert execution.external_id == f"gitlab-deployment-{deployment['id']}" and execution.authorized is False
    violation = Violation.objects.get(kind="unauthorized_deployment")
    assert violation.source == "reconciliation"
    assert reconcile_gitlab_deployments()["recorded"] == 0  # safe to run twice
    assert Execution.objects.count() == 1


def test_reconciliation_follows_pages(gitlab, production, project, bob):
    for i in range(105):
        gitlab.add_deployment(PROJECT, "production", SHA, status="created", deployment_id=10_000 + i)
    counts = reconcile_gitlab_deployments()
    assert counts["deployments"] == 105
    pages = gitlab.calls_to(r"/deployments$", "GET")
    assert [c.query.get("page", "1") for c in pages] == ["1", "2"]


def test_reconciliation_catches_the_end_of_a_deployment_seen_starting(
    client, gitlab, production, project, bob, django_capture_on_commit_callbacks
):
    deployment = gitlab.add_deployment(PROJECT, "production", SHA, status="running")
    with django_capture_on_commit_callbacks(execute=True):
        send(client, "Deployment Hook", deployment_event(gitlab, deployment, "running"))
    gitlab.set_status(deployment, "success")
    assert reconcile_gitlab_deployments()["updated"] == 1
    assert Execution.objects.get().status == ExecutionStatus.SUCCESS


def test_reconciliation_only_looks_at_the_window(gitlab, production, project, bob, settings):
    settings.PORTAL_RECONCILIATION_DAYS = 1
    old = gitlab.add_deployment(PROJECT, "production", SHA, status="success", at=datetime.now(UTC) - timedelta(days=3))
    assert old["updated_at"]
    assert reconcile_gitlab_deployments()["recorded"] == 0
    [listing] = gitlab.calls_to(r"/deployments$", "GET")
    assert "updated_after" in listing.query


def test_reconciliation_is_a_registered_source_and_survives_an_outage(gitlab, production, project, bob):
    assert "gitlab" in [s.name for s in reconciliation_sources()]
    gitlab.fail("deployments", (500, {}))
    counts = reconcile_gitlab_deployments()
    assert counts["errors"] == 1 and counts["failed_projects"] == [PROJECT]
    assert core_reconciliation is not None


def test_without_a_token_reconciliation_says_it_is_not_configured(settings):
    settings.GITLAB_TOKEN = ""
    assert reconcile_gitlab_deployments()["configured"] is False


def test_the_poll_and_decision_keep_working_for_an_already_known_request(gitlab, production, project, bob):
    waiting_deployment(gitlab, production)
    intake.poll_project(project)
    assert intake.poll_project(project)["refreshed"] == 1
