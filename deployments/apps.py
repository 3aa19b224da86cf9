from django.apps import AppConfig


class DeploymentsConfig(AppConfig):
    name = "deployments"
    verbose_name = "Deployment authorization"

    def ready(self) -> None:
        from . import audit, detection, monitoring  # noqa: F401  (django-auditlog, violations, monitoring)
