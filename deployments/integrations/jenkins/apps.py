from django.apps import AppConfig


class JenkinsConfig(AppConfig):
    """The Jenkins integration: everything it contributes is registered here, never named by the core."""

    name = "deployments.integrations.jenkins"
    label = "jenkins"
    verbose_name = "Jenkins integration"

    def ready(self) -> None:
        from deployments import integrations
        from deployments.delivery import providers
        from portal.schedule import register_periodic_job

        from . import audit, intake  # noqa: F401  (audit registrations; builds linked to requests at intake)
        from .provider import JenkinsProvider
        from .reconciliation import reconcile_jenkins_builds

        providers.register(JenkinsProvider())
        integrations.register_reconciliation_source(
            integrations.ReconciliationSource("jenkins", "Jenkins", reconcile_jenkins_builds)
        )
        # Executions are reported by the pipeline's post steps; this catches the reports that never came
        # sooner than the portal's 15-minute reconciliation of every source.
        register_periodic_job("jenkins-reconcile-builds", task="deployments.jenkins.reconcile_builds", schedule=300.0)
