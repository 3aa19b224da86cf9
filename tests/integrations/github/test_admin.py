"""The GitHub admin pages: deliveries visible, re-processing only for administrators."""

from __future__ import annotations

import pytest
from django.urls import reverse

from compliance.people.roles import Role
from deployments.integrations.github.models import (
    AuditOutcome,
    BranchProtectionAudit,
    BranchProtectionRule,
    DeliveryState,
    GitHubWebhookDelivery,
    GitHubWebhookRejection,
    MonitoringSignal,
    SignalKind,
)
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def failed_delivery(db):
    return GitHubWebhookDelivery.objects.create(
        delivery_id="f-1",
        event="deployment_protection_rule",
        action="requested",
        body="{}",
        body_sha256="0" * 64,
        state=DeliveryState.FAILED,
        state_reason="Malformed payload: repository is missing",
    )


def staff(role):
    return factories.UserFactory(roles=[role], is_staff=True)


def reprocess(client, delivery):
    return client.post(
        reverse("admin:github_githubwebhookdelivery_changelist"),
        {"action": "reprocess", "_selected_action": [delivery.pk]},
    )


def test_an_administrator_re_processes_a_failed_delivery(client, failed_delivery, django_capture_on_commit_callbacks):
    client.force_login(staff(Role.ADMINISTRATOR))
    with django_capture_on_commit_callbacks(execute=True):
        response = reprocess(client, failed_delivery)
    assert response.status_code == 302
    failed_delivery.refresh_from_db()
    assert failed_delivery.attempts == 1  # processed again (and failed again: the payload is still broken)
    assert failed_delivery.state == DeliveryState.FAILED


def test_an_auditor_sees_deliveries_but_cannot_re_process(client, failed_delivery):
    client.force_login(staff(Role.AUDITOR))
    assert client.get(reverse("admin:github_githubwebhookdelivery_changelist")).status_code == 200
    reprocess(client, failed_delivery)
    failed_delivery.refresh_from_db()
    assert failed_delivery.attempts == 0 and "Re-processing" not in failed_delivery.state_reason


def test_an_outsider_cannot_open_the_deliveries(client, failed_delivery):
    client.force_login(factories.UserFactory(is_staff=False))
    response = client.get(reverse("admin:github_githubwebhookdelivery_changelist"))
    assert response.status_code == 302 and "/login/" in response["Location"]
    reprocess(client, failed_delivery)
    failed_delivery.refresh_from_db()
    assert failed_delivery.attempts == 0


def test_a_processed_delivery_is_not_re_processed(client, failed_delivery):
    GitHubWebhookDelivery.objects.filter(pk=failed_delivery.pk).update(state=DeliveryState.PROCESSED)
    client.force_login(staff(Role.ADMINISTRATOR))
    reprocess(client, failed_delivery)
    failed_delivery.refresh_from_db()
    assert failed_delivery.state == DeliveryState.PROCESSED and failed_delivery.attempts == 0


def test_every_github_admin_page_renders_with_data(client, failed_delivery, production):
    rule = BranchProtectionRule.objects.create(service=production.service, pattern="main")
    BranchProtectionAudit.objects.create(
        rule=rule,
        branch="main",
        outcome=AuditOutcome.DRIFT,
        differences=[{"setting": "enforce_admins", "expected": True, "actual": False}],
    )
    MonitoringSignal.objects.create(
        kind=SignalKind.UNAUTHORIZED_PUSH,
        repository="octo-org/payments-api",
        branch="main",
        actor_login="mallory-gh",
        summary="pushed",
    )
    GitHubWebhookRejection.objects.create(reason="signature_invalid", status_code=401)
    client.force_login(factories.UserFactory(is_superuser=True, is_staff=True))
    for model in (
        GitHubWebhookDelivery,
        GitHubWebhookRejection,
        BranchProtectionRule,
        BranchProtectionAudit,
        MonitoringSignal,
    ):
        name = model._meta.model_name
        assert client.get(reverse(f"admin:{model._meta.app_label}_{name}_changelist")).status_code == 200
        obj = model.objects.first()
        assert client.get(reverse(f"admin:{obj._meta.app_label}_{name}_change", args=[obj.pk])).status_code == 200
    assert client.get(reverse("admin:github_githubwebhookdelivery_add")).status_code == 403


def test_an_auditor_cannot_audit_branch_rules(client, db):
    from deployments.integrations.github.models import BranchProtectionAudit, BranchProtectionRule

    rule = BranchProtectionRule.objects.create(service=factories.ServiceFactory(), pattern="main")
    auditor = factories.UserFactory(username="audrey", roles=[Role.AUDITOR], is_staff=True)
    client.force_login(auditor)
    response = client.post(reverse("admin:github_branchprotectionrule_changelist"),
                           {"action": "audit_now", "_selected_action": [rule.pk]})
    assert response.status_code in (200, 302, 403)
    assert BranchProtectionAudit.objects.count() == 0
