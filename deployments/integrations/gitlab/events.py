"""Processing stored GitLab webhook deliveries (called from Celery, idempotent).

- ``Pipeline Hook`` / ``Job Hook``: poll the project at once for deployments waiting for approval
  (GitLab has no event for that) — the pipeline reaching its deployment job is when one appears.
- ``Deployment Hook``: running, success, failed, canceled become executions (``executions.py``).
- ``Push Hook``: pushes to protected branches by people not allowed are flagged (``pushes.py``).

Claiming, parsing, outcomes, re-processing and the sweep are the integrations' shared webhook intake
(``deployments.integrations.webhooks.processing``) on the portal's one outbox mechanism.
"""

from __future__ import annotations

from deployments.integrations.webhooks.processing import STALE_PROCESSING, WebhookProcessor  # noqa: F401

from .client import GitLabError
from .common import Outcome, as_dict, as_str, project_for
from .executions import handle_deployment
from .intake import poll_project
from .models import DeliveryState, GitLabWebhookDelivery
from .pushes import handle_push
from .tasks import PROCESSING_RETRY, enqueue_delivery


def handle_pipeline_or_job(delivery: GitLabWebhookDelivery, payload: dict) -> None:
    path = as_str(as_dict(payload.get("project"), "project").get("path_with_namespace"), "project.path_with_namespace")
    project = project_for(path)
    if project is None:
        raise Outcome(DeliveryState.UNCONFIGURED, f"No portal service is GitLab project {path}.")
    counts = poll_project(project)
    if not counts["blocked"]:
        raise Outcome(DeliveryState.PROCESSED, "No deployment of the project is waiting for approval.")


HANDLERS = {
    "Deployment Hook": handle_deployment,
    "Pipeline Hook": handle_pipeline_or_job,
    "Job Hook": handle_pipeline_or_job,
    "Push Hook": handle_push,
}

PROCESSOR = WebhookProcessor(
    source="GitLab",
    model=GitLabWebhookDelivery,
    handlers=HANDLERS,
    unreachable=GitLabError,
    enqueue=enqueue_delivery,
    policy=PROCESSING_RETRY,
    id_field="event_uuid",
)
WEBHOOK_DELIVERIES = PROCESSOR.outbox
process_delivery = PROCESSOR.process


def reprocess_delivery(*, actor, delivery: GitLabWebhookDelivery) -> bool:
    """An administrator asks for a delivery to be processed again (failed, unconfigured, refused)."""
    return PROCESSOR.reprocess(actor=actor, delivery=delivery)


def requeue_stale_deliveries() -> int:
    return PROCESSOR.requeue_stale()
