"""Processing stored GitHub webhook deliveries (called from Celery, idempotent).

Each handler reads the stored body, maps the repository and environment to the portal's
``Service``/``Environment``, and calls the deployments services. The outcome is written on the
delivery (processed, ignored, unconfigured, refused, failed with the reason), so nothing received
is lost and an administrator can re-process a failed one.

Claim, lease, backoff and sweep are the portal's one outbox mechanism (``portal.outbox``,
``WEBHOOK_DELIVERIES`` below): a delivery is "processing" while claimed, and the claim is its lease.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from portal.outbox import Outbox

from .client import GitHubError
from .common import Outcome, github_account  # noqa: F401  (used by callers)
from .intake import (  # noqa: F401  (re-exported for tasks and tests)
    enrich_request,
    handle_deployment_protection_rule,
    handle_deployment_status,
    refresh_pending_checks,
)
from .models import DeliveryState, GitHubWebhookDelivery
from .pushes import handle_branch_protection_rule, handle_push
from .tasks import PROCESSING_RETRY, enqueue_delivery

logger = logging.getLogger(__name__)

HANDLERS = {
    "deployment_protection_rule": handle_deployment_protection_rule,
    "deployment_status": handle_deployment_status,
    "push": handle_push,
    "branch_protection_rule": handle_branch_protection_rule,
}


# --- the processing loop --------------------------------------------------------------------------

# A delivery left "processing" this long was abandoned by a worker that died; it may be claimed again.
STALE_PROCESSING = timedelta(minutes=10)

# Received and failed deliveries may be claimed (a failed one is retried by its task or re-processed).
WEBHOOK_DELIVERIES = Outbox(
    model=GitHubWebhookDelivery,
    state_field="state",
    ready=(DeliveryState.RECEIVED, DeliveryState.FAILED),
    claimed=DeliveryState.PROCESSING,
    claimed_at_field="updated_at",
    failed=DeliveryState.FAILED,
    lease=lambda: STALE_PROCESSING,
    policy=PROCESSING_RETRY,
)


def _finish(delivery: GitHubWebhookDelivery, state: str, reason: str = "") -> None:
    GitHubWebhookDelivery.objects.filter(pk=delivery.pk).update(
        state=state, state_reason=reason[:2000], processed_at=timezone.now(), updated_at=timezone.now()
    )


def process_delivery(delivery_pk: int) -> str | None:
    """Process one stored delivery; returns its final state, or None when there was nothing to do.

    Claiming is a conditional update, so two workers never process the same delivery at once
    and a processed one is never processed again (a redelivered task is a no-op). Raises
    ``GitHubError`` when GitHub could not be reached, after marking the delivery failed, so the
    task can retry.
    """
    if not WEBHOOK_DELIVERIES.claim(delivery_pk, now=timezone.now()):
        return None
    delivery = GitHubWebhookDelivery.objects.select_related("request").get(pk=delivery_pk)
    handler = HANDLERS.get(delivery.event)
    if handler is None:
        state = DeliveryState.PROCESSED if delivery.event == "ping" else DeliveryState.IGNORED
        _finish(delivery, state, "" if delivery.event == "ping" else f"Event {delivery.event!r} is not used.")
        return state
    try:
        payload = json.loads(delivery.body)
    except ValueError:
        _finish(delivery, DeliveryState.FAILED, "Malformed payload: the body is not valid JSON.")
        return DeliveryState.FAILED
    if not isinstance(payload, dict):
        _finish(delivery, DeliveryState.FAILED, "Malformed payload: the body is not a JSON object.")
        return DeliveryState.FAILED
    try:
        handler(delivery, payload)
    except Outcome as outcome:
        _finish(delivery, outcome.state, outcome.reason)
        return outcome.state
    except GitHubError as exc:
        _finish(delivery, DeliveryState.FAILED, f"GitHub call failed: {exc}")
        raise
    except Exception as exc:  # a bug must not lose the delivery: keep it failed and retryable
        logger.exception("Processing GitHub delivery %s failed", delivery.delivery_id)
        _finish(delivery, DeliveryState.FAILED, f"Processing error: {type(exc).__name__}: {exc}"[:2000])
        return DeliveryState.FAILED
    _finish(delivery, DeliveryState.PROCESSED)
    return DeliveryState.PROCESSED


@transaction.atomic
def reprocess_delivery(*, actor, delivery: GitHubWebhookDelivery) -> bool:
    """An administrator asks for a delivery to be processed again (failed, unconfigured, refused).

    Processing stays idempotent: a request already created for it is reused, not duplicated.
    """
    updated = GitHubWebhookDelivery.objects.filter(
        pk=delivery.pk,
        state__in=(DeliveryState.FAILED, DeliveryState.UNCONFIGURED, DeliveryState.REFUSED, DeliveryState.RECEIVED),
    ).update(
        state=DeliveryState.RECEIVED, state_reason=f"Re-processing requested by {actor}.", updated_at=timezone.now()
    )
    if updated:
        transaction.on_commit(lambda: enqueue_delivery(delivery.pk))
    return bool(updated)


def requeue_stale_deliveries() -> int:
    """Queue deliveries that were stored but never processed (broker down, worker killed): received
    ones older than their own task could be, and processing ones whose lease ended."""
    now = timezone.now()
    never_processed = Q(state=DeliveryState.RECEIVED, updated_at__lt=now - STALE_PROCESSING)
    return WEBHOOK_DELIVERIES.sweep(enqueue=enqueue_delivery, now=now, overdue=never_processed, limit=500)
