"""/metrics: denied unless configured, and the figures an operator needs, computed at scrape time
with a constant number of queries."""

from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from compliance.monitoring.jobs import job_finished, job_started
from compliance.monitoring.models import JobOutcome
from deployments.choices import AttemptOutcome, DeliveryStatus, RequestStatus
from deployments.gate import services
from deployments.models import DecisionDelivery, DeliveryAttempt, DeploymentRequest
from portal.metrics import register_metrics_source, unregister_metrics_source
from tests import factories
from tests.delivery.test_delivery import configure_webhook

pytestmark = pytest.mark.django_db

TOKEN = "metrics-token-0123456789abcdef"


def samples(response) -> dict[tuple[str, tuple], float]:
    found = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def scrape(client):
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return samples(response)


@pytest.fixture
def token(settings):
    settings.PORTAL_METRICS_TOKEN = TOKEN
    settings.PORTAL_METRICS_ALLOWED_NETWORKS = []


def test_metrics_are_denied_by_default(client, settings):
    settings.PORTAL_METRICS_TOKEN = ""
    settings.PORTAL_METRICS_ALLOWED_NETWORKS = []
    response = client.get("/metrics")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert "PORTAL_METRICS_TOKEN" in response.json()["error"]["message"]


def test_a_wrong_or_missing_token_is_refused(client, token):
    assert client.get("/metrics").status_code == 401
    response = client.get("/metrics", headers={"Authorization": "Bearer metrics-token-0123456789abcdeX"})
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"portal_" not in response.content


def test_a_signed_in_administrator_without_the_token_is_refused_too(client, token):
    client.force_login(factories.UserFactory(is_staff=True, is_superuser=True))
    assert client.get("/metrics").status_code == 401


def test_an_allowed_network_reads_without_a_token(client, settings):
    settings.PORTAL_METRICS_TOKEN = ""
    settings.PORTAL_METRICS_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    settings.PORTAL_METRICS_ALLOWED_NETWORKS = ["::1/128"]
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403


def test_the_figures_an_operator_needs(client, token, environment, submit, approvers, httpserver, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False  # deliveries stay in the outbox: nothing attempts them
    configure_webhook(environment, httpserver.url_for("/hook"))
    approved = submit()
    factories.approve(approved, approvers[0])
    rejected = submit()
    services.reject_request(actor=approvers[1], request=rejected, comment="not today")
    waiting = submit()  # last: a newer request supersedes an undecided one
    DeploymentRequest.objects.filter(pk=waiting.pk).update(created_at=timezone.now() - timedelta(minutes=30))
    pending = DecisionDelivery.objects.filter(status=DeliveryStatus.PENDING)
    assert pending.count() == 2
    DecisionDelivery.objects.filter(request=approved).update(created_at=timezone.now() - timedelta(minutes=10))
    row = DecisionDelivery.objects.get(request=approved)
    DeliveryAttempt.objects.create(delivery=row, started_at=timezone.now(), outcome=AttemptOutcome.RETRY,
                                   status_code=503)
    job_started(task="deployments.sweep_deliveries")
    job_finished(task="deployments.sweep_deliveries", outcome=JobOutcome.FAILURE, error="OperationalError")

    found = scrape(client)

    state = lambda s: found[("portal_deployment_requests", (("state", s),))]  # noqa: E731
    assert state(RequestStatus.AWAITING_APPROVAL) == 1
    assert state(RequestStatus.APPROVED) == 1 and state(RequestStatus.REJECTED) == 1
    assert found[("portal_approvals_total", (("decision", "approve"),))] == 1
    assert found[("portal_approvals_total", (("decision", "reject"),))] == 1
    assert found[("portal_approval_wait_seconds_count", ())] == 2
    assert found[("portal_approval_wait_seconds_bucket", (("le", "60.0"),))] == 2
    assert 1790 < found[("portal_oldest_awaiting_approval_age_seconds", ())] < 1900
    assert found[("portal_outbox_depth", (("provider", "webhook"),))] == 2
    assert 590 < found[("portal_outbox_oldest_undelivered_age_seconds", (("provider", "webhook"),))] < 700
    assert found[("portal_delivery_attempts_total", (("outcome", "retry"), ("provider", "webhook")))] == 1
    assert found[("portal_job_failures_total", (("task", "deployments.sweep_deliveries"),))] == 1
    assert found[("portal_job_last_started_timestamp_seconds", (("task", "deployments.sweep_deliveries"),))] > 0
    assert found[("portal_job_late", (("task", "deployments.sweep_deliveries"),))] == 0
    assert ("portal_audit_chain_unsealed_rows", (("model", "auditlog.logentry"),)) in found
    assert all(value == 1 for (name, _), value in found.items() if name == "portal_metrics_source_up")


def test_scraping_costs_the_same_queries_whatever_the_volume(client, token, submit, approvers,
                                                            django_assert_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    submit()
    with CaptureQueriesContext(connection) as few:
        scrape(client)
    for _ in range(5):
        factories.approve(submit(), approvers[0])
    with django_assert_num_queries(len(few.captured_queries)):
        scrape(client)


def test_a_failing_source_is_reported_and_the_others_still_answer(client, token):
    def broken():
        raise RuntimeError("boom")

    register_metrics_source("zz.broken", broken)
    try:
        found = scrape(client)
    finally:
        unregister_metrics_source("zz.broken")
    assert found[("portal_metrics_source_up", (("source", "zz.broken"),))] == 0
    assert found[("portal_metrics_source_up", (("source", "deployments.gate"),))] == 1
