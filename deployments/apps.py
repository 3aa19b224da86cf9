from django.apps import AppConfig


class DeploymentsConfig(AppConfig):
    name = "deployments"
    verbose_name = "Deployment authorization"

    def ready(self) -> None:
        from . import audit  # noqa: F401  (registers models with django-auditlog)
        from .notifications import schedule_on_transition
        from .signals import request_transitioned

        request_transitioned.connect(schedule_on_transition, dispatch_uid="deployments.notifications")
