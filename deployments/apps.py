from django.apps import AppConfig


class DeploymentsConfig(AppConfig):
    name = "deployments"
    verbose_name = "Deployment authorization"

    def ready(self) -> None:
        # Registrations made at start-up (each module registers itself when imported):
        from compliance.people.sections import register_person_section
        from deployments import audit  # noqa: F401  (models recorded by django-auditlog, chained models)
        from deployments.delivery import metrics as delivery_metrics  # noqa: F401  (/metrics figures, each
        from deployments.delivery import (
            outbox,  # noqa: F401  (the outbox receiver of request_transitioned)
            providers,
        )
        from deployments.delivery.providers.webhook import WebhookProvider
        from deployments.detection import findings, panels  # noqa: F401  (violation receivers, monitoring panels)
        from deployments.evidence import reports as evidence_reports  # noqa: F401  (emergency reviews, metrics)
        from deployments.gate import metrics as gate_metrics  # noqa: F401  (the module registers its own source)
        from deployments.notifications import metrics as notification_metrics  # noqa: F401
        from deployments.notifications.dispatch import schedule_on_transition
        from deployments.reports import access_review, definitions  # noqa: F401  (the deployment reports)
        from deployments.reports.scope import TOKEN_REPORT_POLICY  # noqa: F401  (API tokens narrow the reports API)
        from deployments.signals import request_transitioned
        from deployments.web.access import person_access_html
        from portal.schedule import register_periodic_job

        providers.register(WebhookProvider())
        register_periodic_job("open-missed-emergency-reviews", task="deployments.open_missed_emergency_reviews",
                              schedule=900.0)
        register_person_section("deployments.access", "Per environment (may request / may approve)", person_access_html)
        request_transitioned.connect(schedule_on_transition, dispatch_uid="deployments.notifications")
