from django.apps import AppConfig


class GitHubConfig(AppConfig):
    """The GitHub App integration: everything it contributes is registered here, never named by the core."""

    name = "deployments.integrations.github"
    label = "github"
    verbose_name = "GitHub integration"

    def ready(self) -> None:
        from deployments import integrations
        from deployments.delivery import providers
        from portal.metrics import register_metrics_source, webhook_intake_source
        from portal.schedule import register_periodic_job

        from . import audit, receivers  # noqa: F401  (audit registrations; status reports to waiting runs)
        from .models import GitHubWebhookDelivery, GitHubWebhookRejection
        from .provider import GitHubProvider
        from .reconciliation import reconcile_github_deployments
        from .webhooks import github_webhook

        providers.register(GitHubProvider())
        register_metrics_source("github.webhooks", webhook_intake_source(
            "github", delivery_model=GitHubWebhookDelivery, rejection_model=GitHubWebhookRejection))
        integrations.register_webhook("github/", github_webhook, name="github_webhook")
        integrations.register_reconciliation_source(
            integrations.ReconciliationSource("github", "GitHub", reconcile_github_deployments)
        )
        register_periodic_job("github-requeue-stale-deliveries",
                              task="deployments.github.requeue_stale_deliveries", schedule=300.0)
        register_periodic_job("github-refresh-pending-checks",
                              task="deployments.github.refresh_pending_checks", schedule=60.0)
        register_periodic_job("github-audit-branch-protection",
                              task="deployments.github.audit_branch_protection", schedule=3600.0)
