"""Processing stored GitLab webhook deliveries (called from Celery, idempotent).

- ``Pipeline Hook`` / ``Job Hook``: poll the project at once for deployments waiting for approval
  (GitLab has no event for that) — the pipeline reaching its deployment job is when one appears.
- ``Deployment Hook``: running, success, failed, canceled become executions (``executions.py``).
- ``Push Hook``: pushes to protected branches by people not allowed are flagged (``pushes.py``).

Claim, lease, backoff and sweep are the portal's one outbox mechanism (``portal.outbox``).
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from portal.outbox import Outbox

from .client import GitLabError
from .common import Outcome, as_dict, as_str, project_for
from .executions import handle_deployment
from .intake import poll_project
from .models import DeliveryState, GitLabWebhookDelivery
from .pushes import handle_push
from .tasks import PROCESSING_RETRY, enqueue_delivery

logger = logging.getLogger(__name__)


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

STALE_PROCESSING = timedelta(minutes=10)
WEBHOOK_DELIVERIES = Outbox(
    model=GitLabWebhookDelivery,
    state_field="state",
    ready=(DeliveryState.RECEIVED, DeliveryState.FAILED),
    claimed=DeliveryState.PROCESSING,
    claimed_at_field="updated_at",
    failed=DeliveryState.FAILED,
    lease=lambda: STALE_PROCESSING,
    policy=PROCESSING_RETRY,
)


def _finish(delivery: GitLabWebhookDelivery, state: str, reason: str = "") -> None:
    GitLabWebhookDelivery.objects.filter(pk=delivery.pk).update(
        state=state, state_reason=reason[:2000], processed_at=timezone.now(), updated_at=timezone.now()
    )


def process_delivery(delivery_pk: int) -> str | None:
    """Process one stored delivery; its final state, or None when another worker has it or it is done.
    Raises ``GitLabError`` (after marking the delivery failed) when GitLab could not be reached."""
    if not WEBHOOK_DELIVERIES.claim(delivery_pk, now=timezone.now()):
        return None
    delivery = GitLabWebhookDelivery.objects.get(pk=delivery_pk)
    handler = HANDLERS.get(delivery.event)
    if handler is None:
        _finish(delivery, DeliveryState.IGNORED, f"Event {delivery.event!r} is not used.")
        return DeliveryState.IGNORED
    try:
        payload = json.loads(delivery.body)
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        _finish(delivery, DeliveryState.FAILED, "Malformed payload: the body is not a JSON object.")
        return DeliveryState.FAILED
    try:
        handler(delivery, payload)
    except Outcome as outcome:
        _finish(delivery, outcome.state, outcome.reason)
        return outcome.state
    except GitLabError as exc:
        _finish(delivery, DeliveryState.FAILED, f"GitLab call failed: {exc}")
        raise
    except Exception as exc:  # a bug must not lose the delivery: keep it failed and retryable
        logger.exception("Processing GitLab delivery %s failed", delivery.event_uuid)
        _finish(delivery, DeliveryState.FAILED, f"Processing error: {type(exc).__name__}")
        return DeliveryState.FAILED
    _finish(delivery, DeliveryState.PROCESSED)
    return DeliveryState.PROCESSED


@transaction.atomic
def reprocess_delivery(*, actor, delivery: GitLabWebhookDelivery) -> bool:
    """An administrator asks for a delivery to be processed again (failed, unconfigured, refused)."""
    updated = GitLabWebhookDelivery.objects.filter(
        pk=delivery.pk,
        state__in=(DeliveryState.FAILED, DeliveryState.UNCONFIGURED, DeliveryState.REFUSED, DeliveryState.RECEIVED),
    ).update(
        state=DeliveryState.RECEIVED, state_reason=f"Re-processing requested by {actor}.", updated_at=timezone.now()
    )
    if updated:
        transaction.on_commit(lambda: enqueue_delivery(delivery.pk))
    return bool(updated)


def requeue_stale_deliveries() -> int:
    now = timezone.now()
    never_processed = Q(state=DeliveryState.RECEIVED, updated_at__lt=now - STALE_PROCESSING)
    return WEBHOOK_DELIVERIES.sweep(enqueue=enqueue_delivery, now=now, overdue=never_processed, limit=500)
