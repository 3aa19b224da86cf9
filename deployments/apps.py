from django.apps import AppConfig


class DeploymentsConfig(AppConfig):
    name = "deployments"
    verbose_name = "Deployment authorization"

    def ready(self) -> None:
        from deployments import (
            audit,  # noqa: F401  (registers models with django-auditlog)
            delivery,  # noqa: F401  (the outbox receiver of request_transitioned)
            providers,
        )
        from deployments.providers.webhook import WebhookProvider

        providers.register(WebhookProvider())

        from deployments.notifications import schedule_on_transition
        from deployments.signals import request_transitioned

        request_transitioned.connect(schedule_on_transition, dispatch_uid="deployments.notifications")

        from deployments import detection, monitoring  # noqa: F401  (violations, monitoring panels)
        from deployments import reports as _reports  # noqa: F401  (registers the deployment reports)
        from deployments.report_scope import TOKEN_REPORT_POLICY  # noqa: F401  (API tokens narrow the reports API)
