"""Processing stored webhook deliveries, the same for every integration (called from Celery,
idempotent).

``WebhookProcessor.process`` claims the delivery through the portal's one outbox mechanism
(``portal.outbox``: a conditional update, so two workers never process one delivery at once and a
processed one is never processed again), parses the body, calls the handler of its event and writes
the outcome on the delivery — processed, ignored, unconfigured, refused or failed with the reason —
so nothing received is lost and an administrator can re-process one. A handler ends processing early
by raising ``Outcome``; the CI system being unreachable re-raises after marking the delivery failed
(the task retries); any other exception keeps the delivery failed and retryable.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from portal.outbox import Outbox
from portal.retry import RetryPolicy

from .models import DeliveryState, ReceivedWebhook

logger = logging.getLogger(__name__)

# A delivery left "processing" this long was abandoned by a worker that died; it may be claimed again.
STALE_PROCESSING = timedelta(minutes=10)
# States an administrator may ask to process again.
REPROCESSABLE = (DeliveryState.FAILED, DeliveryState.UNCONFIGURED, DeliveryState.REFUSED, DeliveryState.RECEIVED)


class Outcome(Exception):  # noqa: N818 - reads as "processing ended with this outcome"
    """Ends processing of a delivery in ``state`` with ``reason`` (not an error)."""

    def __init__(self, state: str, reason: str):
        super().__init__(reason)
        self.state = state
        self.reason = reason


class Malformed(Outcome):
    def __init__(self, reason: str):
        super().__init__(DeliveryState.FAILED, f"Malformed payload: {reason}")


def as_dict(value, what: str) -> dict:
    if not isinstance(value, dict):
        raise Malformed(f"{what} is missing or not an object")
    return value


def as_str(value, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise Malformed(f"{what} is missing or not a string")
    return value


def as_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Malformed(f"{what} is missing or not a number")
    return value


Handler = Callable[[ReceivedWebhook, dict], None]


@dataclass
class WebhookProcessor:
    """One integration's processing of stored deliveries: its model, its handlers per event, the
    exception its API client raises when the CI system cannot be reached, and how a delivery is
    queued. ``quiet_events`` are acknowledged as processed without a handler (GitHub's ``ping``)."""

    source: str
    model: type[ReceivedWebhook]
    handlers: Mapping[str, Handler]
    unreachable: type[Exception]
    enqueue: Callable[[int], None]
    policy: RetryPolicy
    id_field: str
    quiet_events: tuple[str, ...] = ()
    related: tuple[str, ...] = ()
    outbox: Outbox = field(init=False)

    def __post_init__(self) -> None:
        # Received and failed deliveries may be claimed (a failed one is retried by its task or re-processed).
        self.outbox = Outbox(
            model=self.model,
            state_field="state",
            ready=(DeliveryState.RECEIVED, DeliveryState.FAILED),
            claimed=DeliveryState.PROCESSING,
            claimed_at_field="updated_at",
            failed=DeliveryState.FAILED,
            lease=lambda: STALE_PROCESSING,
            policy=self.policy,
        )

    def finish(self, delivery: ReceivedWebhook, state: str, reason: str = "") -> None:
        now = timezone.now()
        self.model.objects.filter(pk=delivery.pk).update(
            state=state, state_reason=reason[:2000], processed_at=now, updated_at=now
        )

    def process(self, delivery_pk: int) -> str | None:
        """Process one stored delivery; its final state, or None when another worker has it or it is
        done. Raises ``unreachable`` (after marking the delivery failed) so the task can retry."""
        if not self.outbox.claim(delivery_pk, now=timezone.now()):
            return None
        delivery = self.model.objects.select_related(*self.related).get(pk=delivery_pk)
        handler = self.handlers.get(delivery.event)
        if handler is None:
            quiet = delivery.event in self.quiet_events
            state = DeliveryState.PROCESSED if quiet else DeliveryState.IGNORED
            self.finish(delivery, state, "" if quiet else f"Event {delivery.event!r} is not used.")
            return state
        try:
            payload = json.loads(delivery.body)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            self.finish(delivery, DeliveryState.FAILED, "Malformed payload: the body is not a JSON object.")
            return DeliveryState.FAILED
        try:
            handler(delivery, payload)
        except Outcome as outcome:
            self.finish(delivery, outcome.state, outcome.reason)
            return outcome.state
        except self.unreachable as exc:
            self.finish(delivery, DeliveryState.FAILED, f"{self.source} call failed: {exc}")
            raise
        except Exception as exc:  # a bug must not lose the delivery: keep it failed and retryable
            logger.exception("Processing %s delivery %s failed", self.source, getattr(delivery, self.id_field))
            self.finish(delivery, DeliveryState.FAILED, f"Processing error: {type(exc).__name__}")
            return DeliveryState.FAILED
        self.finish(delivery, DeliveryState.PROCESSED)
        return DeliveryState.PROCESSED

    def reprocess(self, *, actor, delivery: ReceivedWebhook) -> bool:
        """An administrator asks for a delivery to be processed again (failed, unconfigured, refused).
        Processing stays idempotent: a request already created for it is reused, not duplicated."""
        with transaction.atomic():
            updated = self.model.objects.filter(pk=delivery.pk, state__in=REPROCESSABLE).update(
                state=DeliveryState.RECEIVED,
                state_reason=f"Re-processing requested by {actor}.",
                updated_at=timezone.now(),
            )
            if updated:
                transaction.on_commit(lambda: self.enqueue(delivery.pk))
        return bool(updated)

    def requeue_stale(self) -> int:
        """Queue deliveries that were stored but never processed (broker down, worker killed): received
        ones older than their own task could be, and processing ones whose lease ended."""
        now = timezone.now()
        never_processed = Q(state=DeliveryState.RECEIVED, updated_at__lt=now - STALE_PROCESSING)
        return self.outbox.sweep(enqueue=self.enqueue, now=now, overdue=never_processed, limit=500)
