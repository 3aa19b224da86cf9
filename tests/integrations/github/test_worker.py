"""End to end on a real Celery worker with Redis (CI runs this under REQUIRE_SERVICES=1):
signed deployment_protection_rule → request with checks and change set → approvals → exactly one
callback to GitHub with the right body."""

from __future__ import annotations

import pytest

from deployments.choices import DeliveryStatus, RequestStatus
from deployments.gate import services
from deployments.integrations.github.models import DeliveryState, GitHubWebhookDelivery
from deployments.models import DecisionDelivery, DeploymentRequest
from tests import factories
from tests.integrations.github.conftest import (
    BASE_SHA,
    REPOSITORY,
    RUN_ID,
    SHA,
    prepare_github,
    protection_payload,
    send,
)
from tests.services_required import wait_for

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def test_github_protection_rule_end_to_end_on_a_worker(
    celery_worker,
    client,
    github,
    production,
    octocat,
    approvers,
):
    services.report_execution(actor=None, environment=production, sha=BASE_SHA, status="success")
    run = prepare_github(github)
    github.fail("callback", (503, {}))  # the first callback attempt fails; the outbox retries

    response = send(client, "deployment_protection_rule", protection_payload(github), delivery_id="e2e-1")
    assert response.status_code == 202
    assert wait_for(
        lambda: GitHubWebhookDelivery.objects.filter(delivery_id="e2e-1", state=DeliveryState.PROCESSED).exists()
    )
    request = DeploymentRequest.objects.get()
    assert request.status == RequestStatus.AWAITING_APPROVAL
    assert request.change_set["base"] == BASE_SHA and request.change_set["head"] == SHA
    assert request.change_authors == ["bob-gh", "bob@example.com"] and request.requester == octocat

    # A redelivery while all this happens changes nothing.
    assert (
        send(client, "deployment_protection_rule", protection_payload(github), delivery_id="e2e-1").status_code == 200
    )

    for person in approvers[:2]:
        factories.approve(request, person)
    row = DecisionDelivery.objects.get(request=request, provider="github")
    # Retry after the 503 comes after the outbox's backoff; make it due now as the sweeper would see it.
    assert wait_for(lambda: DecisionDelivery.objects.get(pk=row.pk).last_status_code == 503)
    DecisionDelivery.objects.filter(pk=row.pk, status=DeliveryStatus.PENDING).update(next_attempt_at=row.created_at)
    from deployments.tasks import sweep_deliveries

    sweep_deliveries.delay()
    assert wait_for(lambda: DecisionDelivery.objects.get(pk=row.pk).status == DeliveryStatus.DELIVERED)
    posts = [
        c
        for c in github.calls_to(rf"/repos/{REPOSITORY}/actions/runs/{RUN_ID}/deployment_protection_rule$", "POST")
        if "state" in c.json
    ]
    assert [c.status for c in posts] == [503, 204]
    assert run.decisions == [posts[-1].json]
    assert posts[-1].json["state"] == "approved" and posts[-1].json["environment_name"] == "production"
    assert f"/requests/{request.pk}/" in posts[-1].json["comment"]
