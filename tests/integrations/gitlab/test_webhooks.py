"""The webhook: the token in constant time, one delivery per X-Gitlab-Event-UUID, bounded bodies,
refusals in a bounded log with nothing created; Pipeline/Job events poll at once."""

from __future__ import annotations

import pytest

from deployments.integrations.gitlab.models import DeliveryState, GitLabWebhookDelivery, GitLabWebhookRejection
from deployments.models import DeploymentRequest
from tests.integrations.gitlab.conftest import WEBHOOK_SECRET, pipeline_event, send, waiting_deployment

pytestmark = pytest.mark.django_db


def test_a_pipeline_event_takes_in_the_waiting_deployment_at_once(
    client, gitlab, production, project, bob, django_capture_on_commit_callbacks
):
    waiting_deployment(gitlab, production)
    with django_capture_on_commit_callbacks(execute=True):
        response = send(client, "Pipeline Hook", pipeline_event(gitlab))
    assert response.status_code == 202
    delivery = GitLabWebhookDelivery.objects.get()
    assert delivery.state == DeliveryState.PROCESSED and delivery.project_path == "acme/billing-worker"
    assert "X-Gitlab-Token" not in delivery.headers and WEBHOOK_SECRET not in str(delivery.headers)
    assert DeploymentRequest.objects.count() == 1


def test_a_job_event_polls_too(client, gitlab, production, project, bob, django_capture_on_commit_callbacks):
    waiting_deployment(gitlab, production)
    payload = {
        "object_kind": "build",
        "build_id": 1,
        "build_status": "manual",
        "project": pipeline_event(gitlab)["project"],
    }
    with django_capture_on_commit_callbacks(execute=True):
        assert send(client, "Job Hook", payload).status_code == 202
    assert DeploymentRequest.objects.count() == 1


def test_a_redelivery_is_acknowledged_and_changes_nothing(
    client, gitlab, production, project, bob, django_capture_on_commit_callbacks
):
    waiting_deployment(gitlab, production)
    with django_capture_on_commit_callbacks(execute=True):
        assert send(client, "Pipeline Hook", pipeline_event(gitlab), event_uuid="e-1").status_code == 202
    calls = len(gitlab.calls)
    with django_capture_on_commit_callbacks(execute=True):
        again = send(client, "Pipeline Hook", pipeline_event(gitlab), event_uuid="e-1")
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert GitLabWebhookDelivery.objects.count() == 1 and len(gitlab.calls) == calls


@pytest.mark.parametrize(
    ("token", "reason"),
    [(None, "token_missing"), ("wrong-token", "token_invalid"), (WEBHOOK_SECRET + "x", "token_invalid")],
)
def test_a_forged_token_is_refused_and_nothing_is_created(client, gitlab, production, project, bob, token, reason):
    waiting_deployment(gitlab, production)
    response = send(client, "Pipeline Hook", pipeline_event(gitlab), token=token)
    assert response.status_code == 401 and response.json()["error"]["code"] == reason
    assert not GitLabWebhookDelivery.objects.exists() and not DeploymentRequest.objects.exists()
    assert not gitlab.calls
    rejection = GitLabWebhookRejection.objects.get()
    assert rejection.reason == reason and rejection.status_code == 401


def test_without_a_configured_secret_every_call_is_refused(client, gitlab, settings):
    settings.GITLAB_WEBHOOK_SECRET = ""
    response = send(client, "Pipeline Hook", pipeline_event(gitlab), token="")
    assert response.status_code == 401
    assert GitLabWebhookRejection.objects.get().reason == "secret_not_configured"


def test_an_oversized_body_is_refused(client, gitlab, settings):
    settings.GITLAB_WEBHOOK_MAX_BYTES = 100
    response = send(client, "Pipeline Hook", b"{" + b" " * 200 + b"}")
    assert response.status_code == 413 and not GitLabWebhookDelivery.objects.exists()
    assert GitLabWebhookRejection.objects.get().reason == "too_large"


def test_a_call_without_event_uuid_is_refused(client, gitlab):
    response = send(client, "Pipeline Hook", pipeline_event(gitlab), headers={"X-Gitlab-Event-UUID": ""})
    assert response.status_code == 400 and not GitLabWebhookDelivery.objects.exists()


def test_repeated_refusals_from_one_address_share_a_row(client, gitlab):
    for _ in range(5):
        send(client, "Pipeline Hook", pipeline_event(gitlab), token="nope")
    rejection = GitLabWebhookRejection.objects.get()
    assert rejection.count == 5


def test_an_event_for_an_unknown_project_is_kept_unconfigured(client, gitlab, django_capture_on_commit_callbacks):
    payload = pipeline_event(gitlab)
    payload["project"]["path_with_namespace"] = "someone/else"
    with django_capture_on_commit_callbacks(execute=True):
        send(client, "Pipeline Hook", payload)
    assert GitLabWebhookDelivery.objects.get().state == DeliveryState.UNCONFIGURED


def test_a_gitlab_outage_while_processing_leaves_the_delivery_failed_and_retryable(
    client, gitlab, production, project, bob, django_capture_on_commit_callbacks, administrator
):
    from deployments.integrations.gitlab import events

    waiting_deployment(gitlab, production)
    gitlab.fail("deployments", (502, {}))
    with django_capture_on_commit_callbacks(execute=True):
        send(client, "Pipeline Hook", pipeline_event(gitlab))
    delivery = GitLabWebhookDelivery.objects.get()
    assert delivery.state == DeliveryState.FAILED and "502" in delivery.state_reason
    assert not DeploymentRequest.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        assert events.reprocess_delivery(actor=administrator, delivery=delivery)
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.PROCESSED and DeploymentRequest.objects.count() == 1


def test_other_events_are_stored_and_ignored(client, gitlab, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        assert send(client, "Issue Hook", {"object_kind": "issue"}).status_code == 202
    assert GitLabWebhookDelivery.objects.get().state == DeliveryState.IGNORED
