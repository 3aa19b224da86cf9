from django.apps import AppConfig


class DeploymentsConfig(AppConfig):
    name = "deployments"
    verbose_name = "Deployment authorization"

    def ready(self) -> None:
        from . import (
            audit,  # noqa: F401  (registers models with django-auditlog)
            delivery,  # noqa: F401  (the outbox receiver of request_transitioned)
            providers,
        )
        from .providers.webhook import WebhookProvider

        providers.register(WebhookProvider())

        from .notifications import schedule_on_transition
        from .signals import request_transitioned

        request_transitioned.connect(schedule_on_transition, dispatch_uid="deployments.notifications")

        from . import detection, monitoring  # noqa: F401  (violations, monitoring panels)
        from . import reports as _reports  # noqa: F401  (registers the deployment reports)
        from .report_scope import TOKEN_REPORT_POLICY  # noqa: F401  (API tokens narrow the reports API)
