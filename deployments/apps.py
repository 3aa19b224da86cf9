from django.apps import AppConfig


class DeploymentsConfig(AppConfig):
    name = "deployments"
    verbose_name = "Deployment authorization"

    def ready(self) -> None:
        from . import audit  # noqa: F401  (registers models with django-auditlog)
        from . import reports as _reports  # noqa: F401  (registers the deployment reports)
