from django.apps import AppConfig


class ComplianceConfig(AppConfig):
    name = "compliance"
    verbose_name = "People and compliance"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from . import (
            audit,  # noqa: F401  (registers models with django-auditlog)
            signals,
            training_gate,  # noqa: F401  (registers the training gate)
        )

        signals.connect()

        from . import audit_trail  # noqa: F401  (hash chain, violations, reviews)
        from .reports import (
            builtin,  # noqa: F401  (registers the report-exports report)
            oversight,  # noqa: F401  (training, violations and audit-review reports)
        )

        post_migrate.connect(_sync_roles_after_migrate, dispatch_uid="compliance.sync_roles")


def _sync_roles_after_migrate(sender, app_config=None, using="default", plan=None, **kwargs):
    # Runs once per migrate (keyed on this app's signal), so models added later get role permissions.
    if sender.name != "compliance":
        return
    from .roles import sync_role_groups

    sync_role_groups()
