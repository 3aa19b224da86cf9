"""Decisions reach GitLab through the outbox, once in effect, whatever GitLab answers meanwhile."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from deployments.choices import DeliveryStatus, RequestStatus
from deployments.delivery import outbox
from deployments.gate import services
from deployments.integrations.gitlab import intake
from deployments.integrations.gitlab.models import GitLabProject
from deployments.integrations.gitlab.provider import COMMENT_LIMIT
from deployments.models import DecisionDelivery, DeliveryAttempt, DeploymentRequest
from tests import factories
from tests.integrations.gitlab.conftest import waiting_deployment
from tests.integrations.gitlab.fake import BOT, TOKEN

pytestmark = pytest.mark.django_db


@pytest.fixture
def waiting(gitlab, production, project, bob):
    deployment = waiting_deployment(gitlab, production)
    intake.poll_project(project)
    request = DeploymentRequest.objects.get()
    assert request.status == RequestStatus.AWAITING_APPROVAL
    return request, deployment


def approve_all(request, approvers, capture=None):
    for person in approvers[:2]:
        if capture is not None:
            with capture(execute=True):
                factories.approve(request, person)
        else:
            factories.approve(request, person)
    request.refresh_from_db()
    assert request.status == RequestStatus.APPROVED
    return DecisionDelivery.objects.get(request=request, provider="gitlab")


def settle(row, limit=20):
    for _ in range(limit):
        row.refresh_from_db()
        if row.status != DeliveryStatus.PENDING:
            return row
        outbox.attempt_delivery(delivery_id=row.pk, now=row.next_attempt_at)
    row.refresh_from_db()
    return row


def approvals_posted(gitlab, deployment):
    return gitlab.calls_to(rf"/projects/acme%2Fbilling-worker/deployments/{deployment['id']}/approval$", "POST")


def test_the_approval_is_posted_once_as_the_bot_with_the_portal_link(
    waiting, gitlab, approvers, django_capture_on_commit_callbacks
):
    request, deployment = waiting
    row = approve_all(request, approvers, django_capture_on_commit_callbacks)
    row.refresh_from_db()
    assert row.status == DeliveryStatus.DELIVERED
    [call] = approvals_posted(gitlab, deployment)
    assert set(call.json) == {"status", "comment"}
    assert call.json["status"] == "approved"
    assert f"https://portal.example.com/requests/{request.pk}/" in call.json["comment"]
    assert len(call.json["comment"]) <= COMMENT_LIMIT
    assert call.headers["Private-Token"] == TOKEN
    assert deployment["approvals"][0]["user"]["username"] == BOT["username"]
    assert deployment["status"] == "created"  # unblocked; the manual job was not played
    assert not gitlab.calls_to(r"/play$")


def test_represented_as_is_sent_when_configured(waiting, gitlab, approvers):
    request, deployment = waiting
    GitLabProject.objects.update(represented_as="Deployment portal")
    row = settle(approve_all(request, approvers))
    assert row.status == DeliveryStatus.DELIVERED
    [call] = approvals_posted(gitlab, deployment)
    assert call.json["represented_as"] == "Deployment portal"


def test_approve_and_deploy_plays_the_blocked_job(waiting, gitlab, approvers):
    request, deployment = waiting
    GitLabProject.objects.update(approve_and_deploy=True)
    row = settle(approve_all(request, approvers))
    assert row.status == DeliveryStatus.DELIVERED
    [_play] = gitlab.calls_to(rf"/jobs/{deployment['deployable']['id']}/play$", "POST")
    assert deployment["deployable"]["status"] == "pending"
    assert DeliveryAttempt.objects.get(delivery=row).error == f"Job {deployment['deployable']['id']} played."


def test_a_rejection_is_posted_as_rejected(waiting, gitlab, approvers, django_capture_on_commit_callbacks):
    request, deployment = waiting
    with django_capture_on_commit_callbacks(execute=True):
        services.reject_request(actor=approvers[0], request=request, comment="Not during month-end close.")
    [call] = approvals_posted(gitlab, deployment)
    assert call.json["status"] == "rejected"
    assert deployment["status"] == "failed" and deployment["deployable"]["failure_reason"] == "deployment_rejected"


def test_503_three_times_then_201_is_delivered_once(waiting, gitlab, approvers):
    request, deployment = waiting
    gitlab.fail("approval", *[(503, {})] * 3)
    row = settle(approve_all(request, approvers))
    assert row.status == DeliveryStatus.DELIVERED and row.attempts == 4
    assert [a.status_code for a in DeliveryAttempt.objects.filter(delivery=row)] == [503, 503, 503, 201]
    assert len(deployment["approvals"]) == 1


def test_429_with_retry_after_is_honoured_without_sleeping_in_the_worker(waiting, gitlab, approvers, settings):
    settings.PORTAL_DELIVERY_BACKOFF_SECONDS = 1
    request, _ = waiting
    gitlab.fail("approval", (429, {"Retry-After": "120"}))
    row = approve_all(request, approvers)
    before, started = timezone.now(), time.monotonic()
    outbox.attempt_delivery(delivery_id=row.pk, now=row.next_attempt_at)
    assert time.monotonic() - started < 30  # python-gitlab's own sleep-and-retry is off
    row.refresh_from_db()
    assert row.status == DeliveryStatus.PENDING and row.last_status_code == 429
    assert (row.next_attempt_at - before).total_seconds() >= 119
    assert settle(row).status == DeliveryStatus.DELIVERED


def test_an_exhausted_rate_limit_waits_until_its_reset(waiting, gitlab, approvers, settings):
    settings.PORTAL_DELIVERY_BACKOFF_SECONDS = 1
    request, _ = waiting
    reset = int(time.time()) + 600
    gitlab.fail("approval", (429, {"RateLimit-Remaining": "0", "RateLimit-Reset": str(reset)}))
    row = approve_all(request, approvers)
    outbox.attempt_delivery(delivery_id=row.pk, now=row.next_attempt_at)
    row.refresh_from_db()
    assert row.status == DeliveryStatus.PENDING
    assert row.next_attempt_at.timestamp() >= reset - 2


def test_a_timeout_is_retried(waiting, gitlab, approvers, settings):
    request, deployment = waiting
    settings.PORTAL_HTTP_TIMEOUT = 0.5
    gitlab.delay["approval"] = 1.5
    row = approve_all(request, approvers)
    outbox.attempt_delivery(delivery_id=row.pk, now=row.next_attempt_at)
    row.refresh_from_db()
    assert row.status == DeliveryStatus.PENDING and "timeout" in row.last_error
    gitlab.delay.clear()
    assert settle(row).status == DeliveryStatus.DELIVERED


def test_a_deployment_already_approved_by_the_bot_counts_as_delivered(waiting, gitlab, approvers):
    request, deployment = waiting
    deployment["approvals"].append({"user": BOT, "status": "approved", "comment": "earlier attempt"})
    deployment["status"] = "created"
    row = settle(approve_all(request, approvers))
    assert row.status == DeliveryStatus.DELIVERED and row.last_status_code == 201
    assert "already had this decision" in DeliveryAttempt.objects.get(delivery=row).error
    [posted] = approvals_posted(gitlab, deployment)
    assert posted.status == 400


def test_gitlab_going_another_way_fails_the_delivery_and_alerts(
    waiting, gitlab, approvers, administrator, mailoutbox, django_capture_on_commit_callbacks
):
    request, deployment = waiting
    deployment["status"] = "failed"  # rejected or cancelled on GitLab meanwhile
    row = approve_all(request, approvers)
    with django_capture_on_commit_callbacks(execute=True):
        row = settle(row)
    assert row.status == DeliveryStatus.FAILED and row.attempts == 1
    assert "says otherwise" in row.last_error
    assert any("could not be delivered to gitlab" in m.subject for m in mailoutbox)


def test_a_bad_token_fails_permanently_without_leaking_it(waiting, gitlab, approvers, settings):
    request, _ = waiting
    settings.GITLAB_TOKEN = "glpat-wrong-token-0000"
    row = settle(approve_all(request, approvers))
    assert row.status == DeliveryStatus.FAILED and row.last_status_code == 401
    assert "glpat" not in row.last_error


def test_a_base_url_outside_the_outbound_policy_is_refused_before_connecting(waiting, gitlab, approvers, settings):
    request, _ = waiting
    settings.PORTAL_OUTBOUND_ALLOWED_HOSTS = []
    calls = len(gitlab.calls)
    row = settle(approve_all(request, approvers))
    assert row.status == DeliveryStatus.FAILED and "outbound policy" in row.last_error
    assert len(gitlab.calls) == calls


def test_a_request_made_earlier_in_the_pipeline_is_linked_and_its_approval_reaches_gitlab(
    gitlab, production, project, bob, approvers, django_capture_on_commit_callbacks
):
    from deployments.choices import RequestSource
    from tests.integrations.gitlab.conftest import PIPELINE, SHA

    ci = factories.UserFactory(username="gitlab-ci", is_service_account=True)
    factories.grant(ci, "request", production)
    earlier = services.submit_request(
        actor=ci,
        environment=production,
        sha=SHA,
        ref="main",
        source=RequestSource.CLI,
        requester_login="bob-gl",
        external_ids={"gitlab_pipeline_id": str(PIPELINE)},
        checks={"unit": "success", "integration": "success", "lint": "success", "security-scan": "success"},
        change_authors=["carl@example.com"],
    )
    for person in approvers[:2]:
        factories.approve(earlier, person)
    earlier.refresh_from_db()
    assert earlier.status == RequestStatus.APPROVED
    # The deploy job then blocks on GitLab's approval rule: the poll links it instead of asking again.
    deployment = waiting_deployment(gitlab, production)
    with django_capture_on_commit_callbacks(execute=True):
        intake.poll_project(project)
    assert DeploymentRequest.objects.count() == 1
    row = DecisionDelivery.objects.get(request=earlier, provider="gitlab")
    assert settle(row).status == DeliveryStatus.DELIVERED
    [call] = approvals_posted(gitlab, deployment)
    assert call.json["status"] == "approved" and f"/requests/{earlier.pk}/" in call.json["comment"]


def test_a_request_of_another_pipeline_is_not_linked(gitlab, production, project, bob):
    from deployments.choices import RequestSource
    from tests.integrations.gitlab.conftest import SHA

    ci = factories.UserFactory(username="gitlab-ci", is_service_account=True)
    factories.grant(ci, "request", production)
    other = services.submit_request(
        actor=ci,
        environment=production,
        sha=SHA,
        ref="main",
        source=RequestSource.API,
        external_ids={"gitlab_pipeline_id": "999"},
    )
    waiting_deployment(gitlab, production)
    intake.poll_project(project)
    other.refresh_from_db()
    assert other.status == RequestStatus.SUPERSEDED
    assert DeploymentRequest.objects.filter(source="gitlab").count() == 1
