"""Processing stored GitHub webhook deliveries (called from Celery, idempotent).

Each handler reads the stored body, maps the repository and environment to the portal's
``Service``/``Environment``, and calls the deployments services. The outcome is written on the
delivery (processed, ignored, unconfigured, refused, failed with the reason), so nothing received
is lost and an administrator can re-process a failed one.

Claiming, parsing, outcomes, re-processing and the sweep are the integrations' shared webhook intake
(``deployments.integrations.webhooks.processing``) on the portal's one outbox mechanism.
"""

from __future__ import annotations

from deployments.integrations.webhooks.processing import STALE_PROCESSING, WebhookProcessor  # noqa: F401

from .client import GitHubError
from .common import Outcome, github_account  # noqa: F401  (used by callers)
from .intake import (  # noqa: F401  (re-exported for tasks and tests)
    enrich_request,
    handle_deployment_protection_rule,
    handle_deployment_status,
    refresh_pending_checks,
)
from .models import GitHubWebhookDelivery
from .pushes import handle_branch_protection_rule, handle_push
from .tasks import PROCESSING_RETRY, enqueue_delivery

HANDLERS = {
    "deployment_protection_rule": handle_deployment_protection_rule,
    "deployment_status": handle_deployment_status,
    "push": handle_push,
    "branch_protection_rule": handle_branch_protection_rule,
}


# --- the processing loop: the integrations' shared one ------------------------------------------

PROCESSOR = WebhookProcessor(
    source="GitHub",
    model=GitHubWebhookDelivery,
    handlers=HANDLERS,
    unreachable=GitHubError,
    enqueue=enqueue_delivery,
    policy=PROCESSING_RETRY,
    id_field="delivery_id",
    quiet_events=("ping",),
    related=("request",),
)
WEBHOOK_DELIVERIES = PROCESSOR.outbox
process_delivery = PROCESSOR.process


def reprocess_delivery(*, actor, delivery: GitHubWebhookDelivery) -> bool:
    """An administrator asks for a delivery to be processed again (failed, unconfigured, refused)."""
    return PROCESSOR.reprocess(actor=actor, delivery=delivery)


def requeue_stale_deliveries() -> int:
    return PROCESSOR.requeue_stale()
