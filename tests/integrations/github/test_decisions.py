"""Decisions reach GitHub through the outbox, once in effect, whatever GitHub answers meanwhile."""

from __future__ import annotations

import time

import jwt
import pytest
from django.utils import timezone

from deployments.choices import DeliveryStatus, RequestStatus
from deployments.delivery import outbox
from deployments.delivery.providers import get as get_provider
from deployments.integrations.github import client as github_client
from deployments.integrations.github.provider import COMMENT_LIMIT, comment_for, rate_limit_wait
from deployments.models import DecisionDelivery, DeliveryAttempt, DeploymentRequest
from tests import factories
from tests.integrations.github.conftest import (
    REPOSITORY,
    RUN_ID,
    deployed_base,
    prepare_github,
    protection_payload,
    send,
)
from tests.integrations.github.fake import APP_ID

pytestmark = pytest.mark.django_db


@pytest.fixture
def awaiting(client, github, production, octocat, django_capture_on_commit_callbacks):
    """A GitHub request awaiting approval; GitHub's run waits on the production environment."""
    deployed_base()
    prepare_github(github)
    with django_capture_on_commit_callbacks(execute=True):
        assert send(client, "deployment_protection_rule", protection_payload(github)).status_code == 202
    request = DeploymentRequest.objects.get()
    assert request.status == RequestStatus.AWAITING_APPROVAL
    return request


def approve_all(request, approvers, capture=None):
    for person in approvers[:2]:
        if capture is not None:
            with capture(execute=True):
                factories.approve(request, person)
        else:
            factories.approve(request, person)
    request.refresh_from_db()
    assert request.status == RequestStatus.APPROVED
    return DecisionDelivery.objects.get(request=request, provider="github")


def run_until_settled(row, limit=20):
    for _ in range(limit):
        row.refresh_from_db()
        if row.status != DeliveryStatus.PENDING:
            return row
        outbox.attempt_delivery(delivery_id=row.pk, now=row.next_attempt_at)
    row.refresh_from_db()
    return row


def callbacks(github):
    """The decision callbacks (status reports, which carry no state, are left out)."""
    posts = github.calls_to(rf"/repos/{REPOSITORY}/actions/runs/{RUN_ID}/deployment_protection_rule$", "POST")
    return [c for c in posts if isinstance(c.json, dict) and "state" in c.json]


def status_reports(github):
    posts = github.calls_to(rf"/repos/{REPOSITORY}/actions/runs/{RUN_ID}/deployment_protection_rule$", "POST")
    return [c for c in posts if isinstance(c.json, dict) and "state" not in c.json]


def test_approvals_send_exactly_one_callback_with_the_documented_body(
    awaiting, github, approvers, django_capture_on_commit_callbacks
):
    row = approve_all(awaiting, approvers, django_capture_on_commit_callbacks)
    row.refresh_from_db()
    assert row.status == DeliveryStatus.DELIVERED
    [call] = callbacks(github)
    assert set(call.json) == {"environment_name", "state", "comment"}
    assert call.json["environment_name"] == "production" and call.json["state"] == "approved"
    assert f"https://portal.example.com/requests/{awaiting.pk}/" in call.json["comment"]
    assert len(call.json["comment"]) <= COMMENT_LIMIT
    assert call.headers["Authorization"].startswith("Bearer ghs_")
    assert call.headers["X-Github-Api-Version"] == "2022-11-28"
    assert github.runs[(REPOSITORY, RUN_ID)].decisions == [call.json]


def test_a_rejection_is_sent_as_rejected(awaiting, github, approvers, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        factories.approve(awaiting, approvers[0])
    from deployments.gate import services

    with django_capture_on_commit_callbacks(execute=True):
        services.reject_request(actor=approvers[1], request=awaiting, comment="Not during the audit window.")
    [call] = callbacks(github)
    assert call.json["state"] == "rejected"


def test_503_five_times_then_204_is_delivered_once(awaiting, github, approvers):
    github.fail("callback", *[(503, {})] * 5)
    row = run_until_settled(approve_all(awaiting, approvers))
    assert row.status == DeliveryStatus.DELIVERED and row.attempts == 6
    assert [a.status_code for a in DeliveryAttempt.objects.filter(delivery=row)] == [503] * 5 + [204]
    assert len(github.runs[(REPOSITORY, RUN_ID)].decisions) == 1


def test_429_with_retry_after_is_honoured(awaiting, github, approvers, settings):
    settings.PORTAL_DELIVERY_BACKOFF_SECONDS = 1
    github.fail("callback", (429, {"Retry-After": "120"}))
    row = approve_all(awaiting, approvers)
    before = timezone.now()
    outbox.attempt_delivery(delivery_id=row.pk, now=row.next_attempt_at)
    row.refresh_from_db()
    assert row.status == DeliveryStatus.PENDING and row.last_status_code == 429
    assert (row.next_attempt_at - before).total_seconds() >= 119
    assert run_until_settled(row).status == DeliveryStatus.DELIVERED


def test_403_with_exhausted_rate_limit_waits_until_the_reset(awaiting, github, approvers, settings):
    settings.PORTAL_DELIVERY_BACKOFF_SECONDS = 1
    reset = int(time.time()) + 900
    github.fail(
        "callback",
        (
            403,
            {
                "x-ratelimit-remaining": "0",
                "x-ratelimit-reset": str(reset),
                "x-ratelimit-limit": "5000",
                "x-ratelimit-used": "5000",
            },
        ),
    )
    row = approve_all(awaiting, approvers)
    outbox.attempt_delivery(delivery_id=row.pk, now=row.next_attempt_at)
    row.refresh_from_db()
    assert row.status == DeliveryStatus.PENDING and row.last_status_code == 403
    assert row.next_attempt_at.timestamp() >= reset - 2
    assert run_until_settled(row).status == DeliveryStatus.DELIVERED


def test_a_secondary_rate_limit_without_headers_waits_at_least_a_minute(awaiting, github, approvers, settings):
    settings.PORTAL_DELIVERY_BACKOFF_SECONDS = 1
    github.fail("callback", (403, {}))
    row = approve_all(awaiting, approvers)
    before = timezone.now()
    outbox.attempt_delivery(delivery_id=row.pk, now=row.next_attempt_at)
    row.refresh_from_db()
    assert (row.next_attempt_at - before).total_seconds() >= 59


def test_rate_limit_wait_follows_githubs_rules():
    now = 1_800_000_000.0
    assert rate_limit_wait({"Retry-After": "30"}, now) == 30
    assert rate_limit_wait({"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(now) + 300)}, now) == 300
    assert rate_limit_wait({"x-ratelimit-remaining": "12", "x-ratelimit-reset": str(int(now) + 300)}, now) == 60
    assert rate_limit_wait({}, now) == 60


def test_a_failing_token_endpoint_is_retried_then_delivered(awaiting, github, approvers):
    github_client.clear_token_cache()
    github.fail("token", (500, {}), (503, {}))
    row = run_until_settled(approve_all(awaiting, approvers))
    assert row.status == DeliveryStatus.DELIVERED and row.attempts == 3
    errors = [a.error for a in DeliveryAttempt.objects.filter(delivery=row)]
    assert "installation token" in errors[0] and "HTTP 500" in errors[0]
    assert len(callbacks(github)) == 1


def test_already_decided_on_github_counts_as_delivered(awaiting, github, approvers):
    github.runs[(REPOSITORY, RUN_ID)].waiting.clear()  # someone decided in GitHub's UI, or the run was cancelled
    row = run_until_settled(approve_all(awaiting, approvers))
    assert row.status == DeliveryStatus.DELIVERED and row.last_status_code == 422


def test_a_vanished_run_fails_permanently_and_alerts(
    awaiting, github, approvers, administrator, django_capture_on_commit_callbacks
):
    from django.core import mail

    del github.runs[(REPOSITORY, RUN_ID)]
    with django_capture_on_commit_callbacks(execute=True):
        row = run_until_settled(approve_all(awaiting, approvers))
    assert row.status == DeliveryStatus.FAILED and row.attempts == 1 and row.last_status_code == 404
    assert any("could not be delivered" in m.subject for m in mail.outbox)


def test_a_callback_url_moved_to_another_host_is_never_called(awaiting, github, approvers, httpserver):
    ids = dict(awaiting.external_ids)
    ids["github_callback_url"] = "https://attacker.example/repos/x/y/actions/runs/1/deployment_protection_rule"
    DeploymentRequest.objects.filter(pk=awaiting.pk).update(external_ids=ids)
    awaiting.refresh_from_db()
    row = run_until_settled(approve_all(awaiting, approvers))
    assert row.status == DeliveryStatus.FAILED and "not on the configured GitHub API host" in row.last_error
    assert callbacks(github) == []


def test_a_worker_killed_mid_delivery_gives_exactly_one_effective_decision(awaiting, github, approvers):
    row = approve_all(awaiting, approvers)
    # A worker claims the row and POSTs the decision, then dies before recording the outcome.
    claim = outbox._claim(row.pk, row.next_attempt_at)
    assert claim is not None
    get_provider("github").deliver(claim[0])
    assert len(github.runs[(REPOSITORY, RUN_ID)].decisions) == 1
    # The lease runs out; the sweeper's worker tries again and GitHub says it is already decided.
    row.refresh_from_db()
    assert outbox.due_delivery_ids(now=row.next_attempt_at) == [row.pk]
    row = run_until_settled(row)
    assert row.status == DeliveryStatus.DELIVERED
    assert len(callbacks(github)) == 2
    assert len(github.runs[(REPOSITORY, RUN_ID)].decisions) == 1  # one effective decision


def test_the_comment_never_exceeds_1024_characters_and_keeps_the_link(production):
    from types import SimpleNamespace

    fake_request = SimpleNamespace(pk=12, status_reason="x" * 5000)
    comment = comment_for(fake_request, "approved")
    assert len(comment) == COMMENT_LIMIT
    assert comment.endswith("/requests/12/")


def test_the_app_jwt_has_the_documented_claims(settings, github_key):
    pem, public_key = github_key
    settings.GITHUB_APP_ID = APP_ID
    settings.GITHUB_APP_PRIVATE_KEY = pem
    now = time.time()
    claims = jwt.decode(
        github_client.app_jwt(now), public_key, algorithms=["RS256"], issuer=APP_ID, options={"verify_exp": False}
    )
    assert claims["iat"] == int(now) - 60
    assert int(now) < claims["exp"] <= int(now) + 600
    assert claims["iss"] == APP_ID


def test_the_installation_token_is_cached_until_shortly_before_it_expires(github):
    client = github_client.GitHubClient(42)
    first = client.installation_token()
    assert client.installation_token() == first
    assert len(github.calls_to(r"/access_tokens$")) == 1
    # Pretend it expires in 2 minutes: the next call fetches a new one.
    key = client._cache_key()
    github_client._token_cache[key].expires_at = time.time() + 120
    assert client.installation_token() != first
    assert len(github.calls_to(r"/access_tokens$")) == 2


def test_missing_app_configuration_fails_permanently(awaiting, github, approvers, settings):
    settings.GITHUB_APP_PRIVATE_KEY = ""
    github_client.clear_token_cache()
    row = run_until_settled(approve_all(awaiting, approvers))
    assert row.status == DeliveryStatus.FAILED and "GITHUB_APP_PRIVATE_KEY" in row.last_error


def test_status_reports_while_waiting_carry_no_state_and_stop_at_ten(
    awaiting, github, approvers, django_capture_on_commit_callbacks
):
    from deployments.integrations.github.models import GitHubStatusReport
    from deployments.integrations.github.status_reports import post_status_report

    # Ready for approval: one report was posted when the checks passed.
    [first] = status_reports(github)
    assert set(first.json) == {"environment_name", "comment"}
    assert "Waiting for approval" in first.json["comment"] and f"/requests/{awaiting.pk}/" in first.json["comment"]
    with django_capture_on_commit_callbacks(execute=True):
        factories.approve(awaiting, approvers[0])  # one approval of two: another report
    assert len(status_reports(github)) == 2
    for _ in range(20):
        post_status_report(request_id=awaiting.pk)
    assert len(status_reports(github)) == 10 == GitHubStatusReport.objects.filter(request=awaiting).count()
    assert github.runs[(REPOSITORY, RUN_ID)].status_reports[-1]["environment_name"] == "production"
    # The decision still goes through, once.
    with django_capture_on_commit_callbacks(execute=True):
        factories.approve(awaiting, approvers[1])
    assert len(callbacks(github)) == 1 and len(status_reports(github)) == 10
