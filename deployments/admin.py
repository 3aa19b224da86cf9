"""The deployments app's admin pages, each defined in its capability package (imported here so the
admin site finds them)."""

from deployments.api import admin as api_admin  # noqa: F401  (API tokens)
from deployments.delivery import admin as delivery_admin  # noqa: F401  (decision deliveries, CI webhooks)
from deployments.detection import admin as detection_admin  # noqa: F401  (reconciliation runs)
from deployments.evidence import admin as evidence_admin  # noqa: F401  (emergency reviews, samples)
from deployments.gate import admin as gate_admin  # noqa: F401  (configuration, grants, evidence)
from deployments.notifications import admin as notifications_admin  # noqa: F401  (chat channels, log)
