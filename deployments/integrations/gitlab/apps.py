from django.apps import AppConfig


class GitLabConfig(AppConfig):
    """The GitLab integration: everything it contributes is registered here, never named by the core."""

    name = "deployments.integrations.gitlab"
    label = "gitlab"
    verbose_name = "GitLab integration"

    def ready(self) -> None:
        from django.conf import settings

        from deployments import integrations
        from deployments.delivery import providers
        from portal.metrics import register_metrics_source, webhook_intake_source
        from portal.schedule import register_periodic_job

        from . import audit, receivers  # noqa: F401  (audit registrations; the demo's GitLab project)
        from .models import GitLabWebhookDelivery, GitLabWebhookRejection
        from .provider import GitLabProvider
        from .reconciliation import reconcile_gitlab_deployments
        from .webhooks import gitlab_webhook

        providers.register(GitLabProvider())
        register_metrics_source("gitlab.webhooks", webhook_intake_source(
            "gitlab", delivery_model=GitLabWebhookDelivery, rejection_model=GitLabWebhookRejection))
        integrations.register_webhook("gitlab/", gitlab_webhook, name="gitlab_webhook")
        integrations.register_reconciliation_source(
            integrations.ReconciliationSource("gitlab", "GitLab", reconcile_gitlab_deployments)
        )
        register_periodic_job(
            "gitlab-poll-blocked-deployments",
            task="deployments.gitlab.poll_blocked_deployments",
            schedule=float(settings.GITLAB_POLL_SECONDS),
        )
        register_periodic_job(
            "gitlab-requeue-stale-deliveries", task="deployments.gitlab.requeue_stale_deliveries", schedule=300.0
        )
        register_periodic_job(
            "gitlab-mirror-freeze-periods", task="deployments.gitlab.mirror_freeze_periods", schedule=300.0
        )
        register_periodic_job("gitlab-audit-protection", task="deployments.gitlab.audit_protection", schedule=3600.0)
