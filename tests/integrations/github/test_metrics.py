"""GitHub's webhook intake in /metrics: verified deliveries by state and in the last hour, and refused
calls by reason (a rejection row counts every call it stands for)."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from deployments.integrations.github.models import GitHubWebhookRejection
from tests.integrations.github.conftest import send
from tests.integrations.github.fake import fixture

pytestmark = pytest.mark.django_db

TOKEN = "metrics-token-0123456789abcdef"


def scrape(client) -> dict:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.content.decode()) for s in family.samples}


def test_webhook_intake_and_refusals_are_counted(client, github, settings, django_capture_on_commit_callbacks):
    settings.PORTAL_METRICS_TOKEN = TOKEN
    with django_capture_on_commit_callbacks(execute=True):
        assert send(client, "ping", fixture("ping")).status_code == 202
        assert send(client, "ping", fixture("ping"), secret="not-the-secret").status_code == 401
    GitHubWebhookRejection.objects.update(count=3)  # the same address knocked twice more in its interval

    found = scrape(client)

    assert found[("portal_webhook_received_last_hour", (("source", "github"),))] == 1
    assert found[("portal_webhook_deliveries", (("source", "github"), ("state", "processed")))] == 1
    assert found[("portal_webhook_rejected_last_hour", (("reason", "signature_invalid"), ("source", "github")))] == 3
