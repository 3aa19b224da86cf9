"""Duplicate GitHub deliveries processed at once on PostgreSQL: one request, one processing."""

import hashlib
import json

import pytest

from deployments.integrations.github import events
from deployments.integrations.github.models import DeliveryState, GitHubWebhookDelivery
from deployments.models import DeploymentRequest
from tests.gate.test_races import _run_at_once
from tests.integrations.github.conftest import prepare_github, protection_payload

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def stored(github, delivery_id):
    body = json.dumps(protection_payload(github))
    return GitHubWebhookDelivery.objects.create(
        delivery_id=delivery_id,
        event="deployment_protection_rule",
        action="requested",
        body=body,
        body_sha256=hashlib.sha256(body.encode()).hexdigest(),
        installation_id=42,
    )


def test_two_deliveries_of_one_deployment_at_once_give_one_request(postgres, github, production, octocat):
    prepare_github(github)
    first, second = stored(github, "race-1"), stored(github, "race-2")
    results, errors = _run_at_once(
        [lambda: events.process_delivery(first.pk), lambda: events.process_delivery(second.pk)]
    )
    assert errors == [] and sorted(results) == [DeliveryState.PROCESSED] * 2
    request = DeploymentRequest.objects.get()
    assert set(GitHubWebhookDelivery.objects.values_list("request", flat=True)) == {request.pk}


def test_the_same_delivery_processed_by_two_workers_at_once_is_processed_once(postgres, github, production, octocat):
    prepare_github(github)
    delivery = stored(github, "race-3")
    results, errors = _run_at_once([lambda: events.process_delivery(delivery.pk)] * 2)
    assert errors == [] and sorted(map(str, results)) == ["None", "processed"]
    delivery.refresh_from_db()
    assert delivery.attempts == 1 and DeploymentRequest.objects.count() == 1
