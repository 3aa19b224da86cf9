"""The webhook endpoint: signatures first, size limits, stored deliveries, redeliveries, any payload."""

from __future__ import annotations

import json

import pytest

from deployments.integrations.github.models import DeliveryState, GitHubWebhookDelivery, GitHubWebhookRejection
from deployments.integrations.github.webhooks import verify_signature
from deployments.models import DeploymentRequest
from tests.integrations.github.conftest import WEBHOOK_SECRET, protection_payload, send, signature
from tests.integrations.github.fake import fixture

pytestmark = pytest.mark.django_db


def test_githubs_documented_test_vector_verifies():
    assert verify_signature(
        b"Hello, World!",
        "It's a Secret to Everybody",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
    )
    assert not verify_signature(
        b"Hello, World?",
        "It's a Secret to Everybody",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
    )


def _flip_one_byte(body: bytes) -> bytes:
    index = len(body) // 2
    return body[:index] + bytes([body[index] ^ 0x01]) + body[index + 1 :]


@pytest.mark.parametrize("variant", ["wrong_secret", "flipped_byte", "missing_header", "sha1_only", "not_sha256"])
def test_a_bad_or_missing_signature_is_refused_logged_and_nothing_is_processed(
    client, github, production, octocat, variant, django_capture_on_commit_callbacks
):
    body = json.dumps(protection_payload(github)).encode()
    headers = {}
    if variant == "wrong_secret":
        headers["X-Hub-Signature-256"] = signature(body, "not-the-secret")
    elif variant == "flipped_byte":
        headers["X-Hub-Signature-256"] = signature(body)
        body = _flip_one_byte(body)
    elif variant == "sha1_only":
        headers["X-Hub-Signature"] = "sha1=" + "0" * 40
    elif variant == "not_sha256":
        headers["X-Hub-Signature-256"] = signature(body).replace("sha256=", "sha512=")
    with django_capture_on_commit_callbacks(execute=True):
        response = send(
            client, "deployment_protection_rule", body, sign=False, headers=headers, delivery_id="d-refused"
        )
    assert response.status_code == 401
    assert response.json()["error"]["code"].startswith(("signature", "sha1"))
    assert not GitHubWebhookDelivery.objects.exists()
    assert not DeploymentRequest.objects.exists()
    assert github.calls == []
    rejection = GitHubWebhookRejection.objects.get()
    assert rejection.delivery_id == "d-refused" and rejection.status_code == 401
    expected = {"missing_header": "signature_missing", "sha1_only": "sha1_signature_only"}
    assert rejection.reason == expected.get(variant, "signature_invalid")
    stored = json.dumps(list(GitHubWebhookRejection.objects.values()), default=str)
    assert WEBHOOK_SECRET not in stored


def test_without_a_configured_secret_every_webhook_is_refused(client, settings, db):
    settings.GITHUB_WEBHOOK_SECRET = ""
    response = send(client, "ping", fixture("ping"), secret="anything")
    assert response.status_code == 401
    assert GitHubWebhookRejection.objects.get().reason == "secret_not_configured"
    assert not GitHubWebhookDelivery.objects.exists()


def test_a_body_over_the_limit_is_refused_with_413(client, github, settings):
    settings.GITHUB_WEBHOOK_MAX_BYTES = 200
    response = send(client, "ping", {"zen": "x" * 500})
    assert response.status_code == 413
    assert GitHubWebhookRejection.objects.get().reason == "too_large"
    assert not GitHubWebhookDelivery.objects.exists()


def test_only_post_is_accepted(client, github):
    assert client.get("/webhooks/github/").status_code == 405


def test_a_signed_webhook_without_delivery_headers_is_refused(client, github):
    response = send(client, "ping", fixture("ping"), headers={"X-GitHub-Delivery": ""})
    assert response.status_code == 400
    assert GitHubWebhookRejection.objects.get().reason == "headers_missing"


def test_a_delivery_is_stored_with_headers_minus_signatures_and_acknowledged(
    client, github, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = send(client, "ping", fixture("ping"), delivery_id="72d3162e-cc78-11e3-81ab-4c9367dc0958")
    assert response.status_code == 202
    delivery = GitHubWebhookDelivery.objects.get()
    assert delivery.delivery_id == "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    assert delivery.event == "ping" and delivery.state == DeliveryState.PROCESSED
    assert json.loads(delivery.body)["zen"] == "Keep it logically awesome."
    assert delivery.headers["X-GitHub-Event"] == "ping"
    assert not any("signature" in name.lower() for name in delivery.headers)


def test_a_redelivery_is_acknowledged_and_ignored(
    client, github, production, octocat, django_capture_on_commit_callbacks
):
    from tests.integrations.github.conftest import prepare_github

    prepare_github(github)
    payload = protection_payload(github)
    with django_capture_on_commit_callbacks(execute=True):
        first = send(client, "deployment_protection_rule", payload, delivery_id="same-guid")
    with django_capture_on_commit_callbacks(execute=True):
        second = send(client, "deployment_protection_rule", payload, delivery_id="same-guid")
    assert first.status_code == 202
    assert second.status_code == 200 and second.json()["status"] == "duplicate"
    assert GitHubWebhookDelivery.objects.count() == 1
    assert DeploymentRequest.objects.count() == 1


def test_events_the_portal_does_not_use_are_stored_and_ignored(client, github, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = send(client, "installation", fixture("installation.created"))
    assert response.status_code == 202
    delivery = GitHubWebhookDelivery.objects.get()
    assert delivery.state == DeliveryState.IGNORED and delivery.installation_id == 42


HANDLED = {
    "deployment_protection_rule": "deployment_protection_rule.requested",
    "deployment_status": "deployment_status.created",
    "push": "push",
    "branch_protection_rule": "branch_protection_rule.edited",
}


def _variants(github):
    """Malformed and truncated versions of every handled event."""
    for event, name in HANDLED.items():
        body = json.dumps(fixture(name, api_url=github.url)).encode()
        yield event, body[: len(body) // 2], "truncated"
        yield event, b"\xff\xfe not json at all", "garbage"
        yield event, b"[1, 2, 3]", "array"
        yield event, b"{}", "empty object"
        broken = fixture(name, api_url=github.url)
        broken["repository"] = "octo-org/payments-api"  # a string where an object belongs
        yield event, json.dumps(broken).encode(), "wrong type"
        for key in [k for k in fixture(name) if k not in ("action",)]:
            partial = fixture(name, api_url=github.url)
            del partial[key]
            yield event, json.dumps(partial).encode(), f"without {key}"


def test_malformed_and_truncated_payloads_never_give_a_5xx_and_are_all_stored(
    client, github, production, octocat, django_capture_on_commit_callbacks
):
    from tests.integrations.github.conftest import prepare_github

    prepare_github(github)
    sent = 0
    for event, body, label in _variants(github):
        with django_capture_on_commit_callbacks(execute=True):
            response = send(client, event, body, delivery_id=f"{event}-{label}")
        assert response.status_code == 202, (event, label, response.status_code)
        sent += 1
    deliveries = GitHubWebhookDelivery.objects.all()
    assert deliveries.count() == sent
    # Every one reached a final state with a reason; none is stuck or lost.
    assert not deliveries.filter(state__in=[DeliveryState.RECEIVED, DeliveryState.PROCESSING]).exists()
    failed = deliveries.filter(state=DeliveryState.FAILED)
    assert failed.exists() and all(d.state_reason for d in failed)


def test_a_large_payload_under_githubs_cap_is_accepted(client, github, settings, django_capture_on_commit_callbacks):
    assert settings.GITHUB_WEBHOOK_MAX_BYTES == 25 * 1024 * 1024
    payload = fixture("push")
    payload["commits"] = payload["commits"] * 4000  # about 3 MB, above Django's form upload limit
    with django_capture_on_commit_callbacks(execute=True):
        response = send(client, "push", payload)
    assert response.status_code == 202
    assert len(GitHubWebhookDelivery.objects.get().body) > 2 * 1024 * 1024
