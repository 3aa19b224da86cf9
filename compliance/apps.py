from django.apps import AppConfig
from django.db.models.signals import post_migrate

from .people.roles import sync_role_groups


class ComplianceConfig(AppConfig):
    name = "compliance"
    verbose_name = "People and compliance"

    def ready(self) -> None:
        # Registrations, imported once the models are loaded (in this order: the audit chain links
        # privilege changes before audit entries).
        from . import signals, tasks  # noqa: F401  (Celery tasks in every process)
        from .audit import registration, trail  # noqa: F401  (django-auditlog, the hash chain)
        from .monitoring import metrics, panels  # noqa: F401  (/metrics figures, the monitoring page's panels)
        from .reports import access_control, builtin, oversight  # noqa: F401  (the reports compliance owns)
        from .training import gate  # noqa: F401  (the training gate)

        signals.connect()
        from .identity import signals as identity_signals  # single sign-on: roles from IdP groups

        identity_signals.connect()
        post_migrate.connect(_sync_roles_after_migrate, dispatch_uid="compliance.sync_roles")


def _sync_roles_after_migrate(sender, app_config=None, using="default", plan=None, **kwargs):
    # Runs once per migrate (keyed on this app's signal), so models added later get role permissions.
    if sender.name != "compliance":
        return
    sync_role_groups()
