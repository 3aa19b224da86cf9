"""The admin side of delivery and credentials: retry a failed delivery, set a webhook secret, revoke tokens."""

import pytest

from compliance.people.roles import Role
from deployments.api import tokens
from deployments.choices import DeliveryStatus
from deployments.delivery.secrets import decrypt_secret
from deployments.models import ApiToken, DecisionDelivery, WebhookEndpoint
from tests import factories
from tests.delivery.test_delivery import Receiver, approve_one, configure_webhook, run_until_settled

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    admin = factories.UserFactory(username="root", email="root@example.com", roles=[Role.ADMINISTRATOR],
                                  is_staff=True, is_superuser=True)
    client.force_login(admin)
    return client


def test_the_retry_action_redelivers_a_failed_delivery(admin_client, httpserver, environment, submit, approvers,
                                                       settings, django_capture_on_commit_callbacks):
    settings.PORTAL_DELIVERY_MAX_ATTEMPTS = 1
    receiver = Receiver(httpserver, [503, 200])
    configure_webhook(environment, receiver.url)
    row = run_until_settled(DecisionDelivery.objects.get(request=approve_one(submit, approvers)))
    assert row.status == DeliveryStatus.FAILED
    page = admin_client.get(f"/admin/deployments/decisiondelivery/{row.pk}/change/")
    assert page.status_code == 200 and b"HTTP 503" in page.content
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post("/admin/deployments/decisiondelivery/",
                                     {"action": "retry_deliveries", "_selected_action": [row.pk]})
    assert response.status_code == 302
    row.refresh_from_db()
    assert row.status == DeliveryStatus.DELIVERED and row.attempt_log.count() == 2


def test_a_webhook_secret_is_write_only_in_the_admin(admin_client, environment):
    response = admin_client.post("/admin/deployments/webhookendpoint/add/", {
        "environment": environment.pk, "url": "https://ci.example.com/hook", "is_active": "on",
        "secret": "s3cret-value-123",
    })
    assert response.status_code == 302, response.content[:500]
    endpoint = WebhookEndpoint.objects.get(environment=environment)
    assert decrypt_secret(endpoint.secret_ciphertext) == "s3cret-value-123"
    page = admin_client.get(f"/admin/deployments/webhookendpoint/{endpoint.pk}/change/").content.decode()
    assert "s3cret-value-123" not in page and endpoint.secret_ciphertext not in page
    # Saving without a new secret keeps the current one.
    admin_client.post(f"/admin/deployments/webhookendpoint/{endpoint.pk}/change/", {
        "environment": environment.pk, "url": "https://ci.example.com/hook2", "is_active": "on", "secret": "",
    })
    endpoint.refresh_from_db()
    assert endpoint.url.endswith("hook2") and decrypt_secret(endpoint.secret_ciphertext) == "s3cret-value-123"


def test_the_revoke_action_ends_a_token(admin_client, requester):
    token, clear = tokens.create_api_token(actor=requester, user=requester, name="old laptop")
    admin_client.post("/admin/deployments/apitoken/", {"action": "revoke_tokens", "_selected_action": [token.pk]})
    assert ApiToken.objects.get(pk=token.pk).revoked_at is not None
    assert tokens.token_for(clear) is None
