"""The GitLab integration plugs into the core's registries from its AppConfig, and only there;
its settings refuse bad values; its admin pages are read-only evidence except for administrators;
the demo configures its GitLab service."""

from __future__ import annotations

import pytest
from django.urls import reverse

from compliance.monitoring.jobs import scheduled_jobs
from compliance.people.roles import Role
from deployments import integrations
from deployments.delivery import providers
from deployments.integrations.gitlab.models import DeliveryState, GitLabProject, GitLabWebhookDelivery
from portal.schedule import beat_schedule
from tests import factories
from tests.portal.test_settings import PRODUCTION, manage

GITLAB_TASKS = {
    "deployments.gitlab.poll_blocked_deployments",
    "deployments.gitlab.requeue_stale_deliveries",
    "deployments.gitlab.audit_protection",
}


def test_the_provider_webhook_and_reconciliation_source_are_registered():
    assert providers.get("gitlab").name == "gitlab"
    assert reverse("gitlab_webhook") == "/webhooks/gitlab/"
    assert "gitlab" in {source.name for source in integrations.reconciliation_sources()}


def test_its_periodic_jobs_are_scheduled_and_watched_by_the_heartbeats(settings):
    assert not GITLAB_TASKS & {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}  # not core
    assert {entry["task"] for entry in beat_schedule().values()} >= GITLAB_TASKS
    assert set(scheduled_jobs()) >= GITLAB_TASKS


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"GITLAB_URL": "gitlab.example.com"}, "GITLAB_URL"),
        ({"GITLAB_TOKEN_FILE": "/nonexistent/token"}, "GITLAB_TOKEN_FILE"),
        ({"GITLAB_WEBHOOK_MAX_BYTES": "0"}, "GITLAB_WEBHOOK_MAX_BYTES"),
        ({"GITLAB_POLL_SECONDS": "soon"}, "GITLAB_POLL_SECONDS"),
    ],
)
def test_a_bad_gitlab_value_stops_start_up_naming_the_variable(env, variable):
    result = manage("check", env={**PRODUCTION, **env})
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert "ImproperlyConfigured" in last_line and variable in last_line, last_line


@pytest.mark.django_db
def test_deliveries_are_visible_to_auditors_and_only_administrators_reprocess(client):
    delivery = GitLabWebhookDelivery.objects.create(
        event_uuid="u-1", event="Pipeline Hook", body="{}", body_sha256="0" * 64, state=DeliveryState.FAILED
    )
    auditor = factories.UserFactory(roles=[Role.AUDITOR], is_staff=True)
    client.force_login(auditor)
    changelist = reverse("admin:gitlab_gitlabwebhookdelivery_changelist")
    page = client.get(changelist)
    assert page.status_code == 200 and b"u-1" in page.content and b"reprocess" not in page.content
    client.post(changelist, {"action": "reprocess", "_selected_action": [delivery.pk]})
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.FAILED
    admin = factories.UserFactory(roles=[Role.ADMINISTRATOR], is_staff=True)
    client.force_login(admin)
    assert b"reprocess" in client.get(changelist).content


@pytest.mark.django_db
def test_the_demo_configures_its_gitlab_service():
    from deployments.demo import load_demo_data

    load_demo_data()
    project = GitLabProject.objects.get(service__name="billing-worker")
    assert project.project_path == "acme/billing-worker" and project.check_mapping["unit"] == ["unit-tests*"]
    load_demo_data()  # idempotent
    assert GitLabProject.objects.count() == 1
