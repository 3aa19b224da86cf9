"""Decision delivery: the transactional outbox every CI provider uses.

1. When a request reaches a final decision, ``queue_decision`` writes one ``DecisionDelivery`` row
   per provider that targets the request, *inside* the decision's transaction (receiver of
   ``request_transitioned``), and enqueues ``deliver_decision`` only after commit.
2. ``attempt_delivery`` claims a due row with a conditional UPDATE (the claim pushes
   ``next_attempt_at`` forward by a short lease, so two workers never attempt the same row at once),
   makes one attempt through the provider within its total deadline while a heartbeat renews the
   lease (a worker that dies mid-attempt stops renewing and leaves a row the sweeper picks up one
   lease later), and records it as a ``DeliveryAttempt``.
3. A failure is retried with capped exponential backoff and jitter (``Retry-After`` honoured);
   after ``PORTAL_DELIVERY_MAX_ATTEMPTS`` — or at once when retrying cannot help — the row is
   marked failed and administrators are alerted by e-mail; ``retry_delivery`` (admin action)
   starts it again.
4. ``sweep_deliveries`` (beat) re-enqueues due rows: retries whose time has come, rows whose
   on-commit enqueue never ran (process killed), and rows whose worker died.

Claim, lease, backoff, sweep and give-up are the portal's one outbox mechanism (``portal.outbox``,
``DELIVERIES`` below); this module adds what is particular to decisions: the attempt log, the
providers, the timeline event and the administrators' alert.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.dispatch import receiver
from django.utils import timezone

from compliance.errors import RuleViolation
from compliance.people.alerts import alert_administrators
from deployments.choices import (
    AUTHORIZING_STATUSES,
    OPEN_STATUSES,
    WITHDRAWING_STATUSES,
    AttemptOutcome,
    DeliveryDecision,
    DeliveryStatus,
    EventKind,
    RequestStatus,
)
from deployments.delivery import providers
from deployments.delivery.providers.base import DeliveryOutcome
from deployments.models import DecisionDelivery, DeliveryAttempt, DeploymentRequest, RequestEvent
from deployments.signals import request_transitioned
from deployments.tasks import deliver_decision
from portal import enqueue
from portal.deadline import Deadline
from portal.links import absolute_url
from portal.observability import log_context
from portal.outbox import Outbox
from portal.retry import RetryPolicy

logger = logging.getLogger(__name__)

def decision_for_transition(old_status: str | None, new_status: str) -> str | None:
    """The decision a CI waiting on a request must learn from this transition, if any."""
    if new_status == RequestStatus.APPROVED:
        return DeliveryDecision.APPROVED
    if new_status in (RequestStatus.REJECTED, RequestStatus.BLOCKED):
        return DeliveryDecision.REJECTED
    if new_status in WITHDRAWING_STATUSES and old_status in OPEN_STATUSES:
        return DeliveryDecision.REJECTED  # the wait ends with "no" (the request's status says why)
    if new_status in WITHDRAWING_STATUSES and old_status == RequestStatus.APPROVED:
        return DeliveryDecision.WITHDRAWN
    return None


@receiver(request_transitioned, dispatch_uid="deployments.delivery.outbox.queue_on_transition")
def _queue_on_transition(sender, request, old_status, new_status, actor=None, **kwargs) -> None:
    decision = decision_for_transition(old_status, new_status)
    if decision == DeliveryDecision.WITHDRAWN:
        withdraw_approval(request=request)
    elif decision is not None:
        queue_decision(request=request, decision=decision)


def withdraw_approval(*, request: DeploymentRequest) -> list[DecisionDelivery]:
    """The request's approval no longer stands (inside the transition's transaction, request row locked).

    1. An approval delivery no worker has attempted yet is withdrawn: it is never sent, and the CI
       still waiting is sent a rejection instead (the request's status says why).
    2. Where an approval was delivered, or an attempt may have reached CI (attempted, failed or
       in flight), a withdrawal is queued for providers that can deliver one. A worker that claims
       the approval after this commits finds the request no longer approved and sends nothing
       (``_claim`` locks the request row, so the two never interleave).
    """
    approvals = DecisionDelivery.objects.select_for_update(of=("self",)).filter(
        request=request, decision=DeliveryDecision.APPROVED
    )
    reached: set[str] = set()
    withheld: set[str] = set()
    for delivery in approvals:
        if delivery.status == DeliveryStatus.PENDING and delivery.attempts == 0:
            delivery.status = DeliveryStatus.WITHDRAWN
            delivery.last_error = f"Not sent: the approval was withdrawn ({request.get_status_display().lower()})."
            delivery.save(update_fields=["status", "last_error"])
        if delivery.status == DeliveryStatus.WITHDRAWN:
            withheld.add(delivery.provider)  # withheld now, or earlier at claim time (gone stale)
        else:
            reached.add(delivery.provider)
    return [
        *queue_decision(request=request, decision=DeliveryDecision.REJECTED, only=withheld),
        *queue_decision(request=request, decision=DeliveryDecision.WITHDRAWN, only=reached),
    ]


def queue_decision(
    *, request: DeploymentRequest, decision: str, only: set[str] | None = None
) -> list[DecisionDelivery]:
    """Write the outbox rows for ``decision`` (inside the caller's transaction) and enqueue them on commit.

    ``only``: the providers to queue for (a withdrawal goes only where the approval may have gone,
    and only to providers that can deliver one)."""
    created = []
    now = timezone.now()
    with transaction.atomic():
        for provider in providers.all_providers():
            if only is not None and provider.name not in only:
                continue
            if decision == DeliveryDecision.WITHDRAWN and not provider.delivers_withdrawals:
                continue
            if not provider.targets(request):
                continue
            delivery, was_created = DecisionDelivery.objects.get_or_create(
                request=request,
                provider=provider.name,
                decision=decision,
                defaults={"payload": provider.build_payload(request, decision), "next_attempt_at": now},
            )
            if was_created:
                created.append(delivery)
    for delivery in created:
        _enqueue_on_commit(delivery.pk)
    return created


def _enqueue_on_commit(delivery_id: int, countdown: float | None = None) -> None:
    # One fast publish after commit; with the broker down the row stays due for the sweeper.
    enqueue.publish_on_commit(deliver_decision, (delivery_id,), countdown=countdown, what=f"delivery {delivery_id}")


# --- one attempt ----------------------------------------------------------------------------


def lease_seconds() -> float:
    """How long a claimed attempt is held without news from its worker: the running attempt renews
    it every third (``DELIVERIES.heartbeat``), so a worker that died leaves its row claimable again
    one lease after its last renewal, whatever the attempt's deadline."""
    return settings.PORTAL_DELIVERY_LEASE_SECONDS


def retry_policy() -> RetryPolicy:
    return RetryPolicy(
        max_attempts=settings.PORTAL_DELIVERY_MAX_ATTEMPTS,
        base_seconds=settings.PORTAL_DELIVERY_BACKOFF_SECONDS,
        cap_seconds=settings.PORTAL_DELIVERY_BACKOFF_CAP_SECONDS,
        retry_after_cap_seconds=settings.PORTAL_DELIVERY_RETRY_AFTER_CAP_SECONDS,
    )


# The rows stay pending while attempted: the claim pushes ``next_attempt_at`` to the end of the lease.
DELIVERIES = Outbox(
    model=DecisionDelivery,
    ready=(DeliveryStatus.PENDING,),
    failed=DeliveryStatus.FAILED,
    due_field="next_attempt_at",
    failed_at_field="failed_at",
    lease=lambda: timedelta(seconds=lease_seconds()),
    policy=retry_policy,
)


def backoff_seconds(attempts: int, retry_after: float | None = None) -> float:
    """Capped exponential backoff with jitter (half to full of the step); ``retry_after`` is a floor."""
    return DELIVERIES.retry_delay(attempts, retry_after)


def approval_withdrawn(request: DeploymentRequest, now: datetime) -> str:
    """Why an approval of ``request`` must not be sent now ("" when it still stands)."""
    if request.status not in AUTHORIZING_STATUSES:
        return f"the request is {request.get_status_display().lower()}"
    if request.status == RequestStatus.APPROVED and request.approval_expires_at and request.approval_expires_at <= now:
        return "the approval went stale before it was sent"
    return ""


def _claim(delivery_id: int, now: datetime) -> tuple[DecisionDelivery, DeliveryAttempt] | None:
    with transaction.atomic():
        request_id = DecisionDelivery.objects.filter(pk=delivery_id).values_list("request_id", flat=True).first()
        if request_id is None:
            return None
        # The request's row lock orders this claim against any transition that withdraws the approval:
        # a withdrawal committed first is seen here; one committed after sees the attempt counted.
        request = DeploymentRequest.objects.select_for_update(no_key=True, of=("self",)).get(pk=request_id)
        decision = DecisionDelivery.objects.values_list("decision", flat=True).get(pk=delivery_id)
        why = approval_withdrawn(request, now) if decision == DeliveryDecision.APPROVED else ""
        if why:
            DecisionDelivery.objects.filter(pk=delivery_id, status=DeliveryStatus.PENDING).update(
                status=DeliveryStatus.WITHDRAWN, last_error=f"Not sent: {why}."
            )
            return None
        if not DELIVERIES.claim(delivery_id, now=now):
            return None
        delivery = DecisionDelivery.objects.select_related("request__environment__service").get(pk=delivery_id)
        # An attempt still "in progress" here belonged to a worker that died during its lease.
        DeliveryAttempt.objects.filter(delivery=delivery, outcome=AttemptOutcome.IN_PROGRESS).update(
            outcome=AttemptOutcome.ABANDONED, finished_at=now, error="The worker stopped during the attempt."
        )
        attempt = DeliveryAttempt.objects.create(delivery=delivery, number=delivery.attempts, started_at=now)
    return delivery, attempt


def _call_provider(delivery: DecisionDelivery) -> DeliveryOutcome:
    try:
        provider = providers.get(delivery.provider)
    except KeyError:
        return DeliveryOutcome(delivered=False, error=f"No provider {delivery.provider!r} is registered.",
                               permanent=True)
    try:
        return provider.deliver(delivery)
    except Exception as exc:  # a provider bug must not lose the row: record it and retry
        logger.exception("Provider %s raised while delivering %s", delivery.provider, delivery.pk)
        # The type only: an exception's text may quote a URL or an answer (details are in the log).
        return DeliveryOutcome(delivered=False, error=f"the {delivery.provider} provider failed "
                                                      f"({type(exc).__name__}; see the worker log)")


def attempt_delivery(*, delivery_id: int, now: datetime | None = None) -> DecisionDelivery | None:
    """Make one attempt at a due delivery; ``None`` when it is not due or another worker holds it."""
    now = now or timezone.now()
    claim = _claim(delivery_id, now)
    if claim is None:
        return None
    delivery, attempt = claim
    # Every log line of this attempt names the delivery and its request (portal/observability.py).
    with log_context(delivery_id=delivery.pk, deployment_request_id=delivery.request_id, provider=delivery.provider):
        with Deadline(settings.PORTAL_HTTP_DEADLINE) as limit, \
                DELIVERIES.heartbeat(delivery.pk, attempts=delivery.attempts, on_lost=limit.cut) as lease:
            outcome = _call_provider(delivery)
        if lease.lost and not outcome.delivered:
            # The lease could not be renewed (another claim took the row, or the database was away):
            # cut off so that two attempts never overlap.
            outcome = DeliveryOutcome(
                delivered=False, status_code=outcome.status_code, abandoned=True,
                error="The attempt could not renew its lease and was stopped.",
            )
        elif limit.expired and not outcome.delivered:
            # Cut off at its deadline (a receiver that answers too slowly): abandoned, tried again later.
            outcome = DeliveryOutcome(
                delivered=False, status_code=outcome.status_code, abandoned=True,
                error=f"No complete answer within the {limit.seconds:g} s deadline; the attempt was abandoned.",
            )
        finished = _finish(delivery.pk, attempt.pk, outcome, started=now)
        logger.info("delivery attempt %s of %s: %s", attempt.number, delivery.pk,
                    "delivered" if outcome.delivered else f"not delivered ({outcome.status_code or 'no answer'})",
                    extra={"attempt": attempt.number, "delivered": outcome.delivered, "status": outcome.status_code})
        return finished


@transaction.atomic
def _finish(delivery_id: int, attempt_id: int, outcome: DeliveryOutcome, *, started: datetime) -> DecisionDelivery:
    finished = max(timezone.now(), started)
    delivery = (
        DecisionDelivery.objects.select_for_update(of=("self",))
        .select_related("request")
        .get(pk=delivery_id)
    )
    attempt = DeliveryAttempt.objects.get(pk=attempt_id)
    if attempt.outcome == AttemptOutcome.ABANDONED:
        # Its lease ended and a later attempt took over (a paused worker): keep the record, change
        # nothing else unless the receiver did get it.
        attempt.error = (attempt.error + f" It finished later: {outcome.error or 'delivered'}")[:2000]
        attempt.status_code = outcome.status_code
        attempt.save(update_fields=["error", "status_code"])
        if not outcome.delivered or delivery.status != DeliveryStatus.PENDING:
            return delivery
    attempt.finished_at = finished
    attempt.status_code = outcome.status_code
    attempt.error = outcome.error[:2000]
    delivery.last_status_code = outcome.status_code
    delivery.last_error = outcome.error[:2000]
    if delivery.status != DeliveryStatus.PENDING:  # an administrator intervened meanwhile
        attempt.outcome = AttemptOutcome.DELIVERED if outcome.delivered else AttemptOutcome.FAILED
        attempt.save()
        return delivery
    if outcome.delivered:
        attempt.outcome = AttemptOutcome.DELIVERED
        delivery.status = DeliveryStatus.DELIVERED
        delivery.delivered_at = finished
        delivery.last_error = ""
        RequestEvent.objects.create(
            request=delivery.request,
            kind=EventKind.DELIVERED,
            message=f"{delivery.get_decision_display()} delivered to {delivery.provider} "
                    f"(attempt {delivery.attempts}).",
            data={"delivery_id": delivery.pk, "provider": delivery.provider, "status_code": outcome.status_code},
        )
    elif outcome.permanent or DELIVERIES.exhausted(delivery.attempts):
        attempt.outcome = AttemptOutcome.FAILED
        DELIVERIES.give_up_row(delivery, now=finished, alert=lambda: alert_delivery_failed(delivery_id=delivery.pk))
    else:
        attempt.outcome = AttemptOutcome.ABANDONED if outcome.abandoned else AttemptOutcome.RETRY
        delivery.next_attempt_at, delay = DELIVERIES.next_attempt(
            delivery.attempts, now=finished, retry_after=outcome.retry_after
        )
        _enqueue_on_commit(delivery.pk, countdown=delay)
    attempt.save()
    delivery.save()
    return delivery


def alert_delivery_failed(*, delivery_id: int) -> int:
    """E-mail the active administrators that a decision could not be delivered (after commit)."""
    delivery = DecisionDelivery.objects.select_related("request__environment__service").get(pk=delivery_id)
    request = delivery.request
    subject = f"Decision for request #{request.pk} could not be delivered to {delivery.provider}"
    body = (
        f"The {delivery.get_decision_display().lower()} decision for request #{request.pk} "
        f"({request.environment} @ {request.short_sha}) could not be delivered to {delivery.provider} "
        f"after {delivery.attempts} attempt(s).\n\nLast error: {delivery.last_error or '-'}\n"
        f"Last HTTP status: {delivery.last_status_code or '-'}\n\n"
        f"Request: {absolute_url('deployments:request_detail', request.pk)}\n"
        f"Retry it from the admin: "
        f"{absolute_url('admin:deployments_decisiondelivery_change', delivery.pk)}\n"
    )
    return len(alert_administrators(subject, body))


# --- sweeper and manual retry ---------------------------------------------------------------


def due_delivery_ids(*, now: datetime | None = None, limit: int = 500) -> list[int]:
    """Pending deliveries whose time has come (a retry, a lost enqueue, or a lease that ended)."""
    return DELIVERIES.due_ids(now=now, order_by=("next_attempt_at", "id"), limit=limit)


def sweep_deliveries(*, now: datetime | None = None, limit: int = 500) -> int:
    """Enqueue every due pending delivery (safe to run twice: the claim decides who attempts)."""
    return DELIVERIES.sweep(enqueue=deliver_decision.delay, now=now, order_by=("next_attempt_at", "id"), limit=limit)


@transaction.atomic
def retry_delivery(*, actor, delivery: DecisionDelivery) -> DecisionDelivery:
    """Give a failed delivery a fresh retry budget and enqueue it (attempt history is kept)."""
    locked = DecisionDelivery.objects.select_for_update(of=("self",)).get(pk=delivery.pk)
    if locked.status != DeliveryStatus.FAILED:
        raise RuleViolation(
            "delivery_not_failed",
            f"Only a failed delivery can be retried; this one is {locked.get_status_display().lower()}.",
        )
    locked.status = DeliveryStatus.PENDING
    locked.attempts = 0
    locked.failed_at = None
    locked.next_attempt_at = timezone.now()
    locked.save()
    _enqueue_on_commit(locked.pk)
    return locked
