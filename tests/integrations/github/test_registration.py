"""The GitHub integration plugs into the core's registries from its AppConfig, and only there."""

from django.urls import reverse

from compliance.monitoring.jobs import scheduled_jobs
from deployments import integrations
from deployments.delivery import providers
from portal.schedule import beat_schedule

GITHUB_TASKS = {
    "deployments.github.requeue_stale_deliveries",
    "deployments.github.refresh_pending_checks",
    "deployments.github.audit_branch_protection",
}


def test_the_provider_webhook_and_reconciliation_source_are_registered():
    assert providers.get("github").name == "github"
    assert reverse("github_webhook") == "/webhooks/github/"
    assert "github" in {source.name for source in integrations.reconciliation_sources()}


def test_its_periodic_jobs_are_scheduled_and_watched_by_the_heartbeats(settings):
    assert not GITHUB_TASKS & {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}  # not core
    assert {entry["task"] for entry in beat_schedule().values()} >= GITHUB_TASKS
    assert set(scheduled_jobs()) >= GITHUB_TASKS
