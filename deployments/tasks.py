"""Thin Celery tasks: load, call a service as the system actor, own the retry policy."""

from celery import shared_task
from django.conf import settings

from compliance.people.identity import as_system_actor, system_actor
from deployments.gate import services
from portal.retry import RetryPolicy


@shared_task(name="deployments.expire_due_requests", acks_late=True)
@as_system_actor
def expire_due_requests() -> int:
    return services.expire_due_requests(actor=system_actor())


@shared_task(name="deployments.open_missed_emergency_reviews", acks_late=True)
@as_system_actor
def open_missed_emergency_reviews() -> int:
    """Open a violation for each emergency change not reviewed in time (safe to run twice)."""
    from deployments.evidence import services as evidence

    return evidence.open_missed_review_violations()


@shared_task(name="deployments.deliver_decision", acks_late=True)
@as_system_actor
def deliver_decision(delivery_id: int) -> bool:
    """One attempt at delivering a decision (a no-op when it is not due or another worker holds it)."""
    from deployments.delivery import outbox as delivery

    return delivery.attempt_delivery(delivery_id=delivery_id) is not None


@shared_task(name="deployments.sweep_deliveries", acks_late=True)
@as_system_actor
def sweep_deliveries() -> int:
    """Re-enqueue due and stuck decision deliveries."""
    from deployments.delivery import outbox as delivery

    return delivery.sweep_deliveries()



# --- notifications ------------------------------------------------------------------------------

NOTIFICATION_RETRY = RetryPolicy(
    max_attempts=settings.PORTAL_NOTIFICATION_MAX_ATTEMPTS,
    base_seconds=settings.PORTAL_NOTIFICATION_BACKOFF_SECONDS,
    cap_seconds=settings.PORTAL_NOTIFICATION_BACKOFF_CAP_SECONDS,
)
NOTIFICATION_MAX_RETRIES = NOTIFICATION_RETRY.max_attempts


@shared_task(name="deployments.notify_request", acks_late=True)
@as_system_actor
def notify_request(request_id: int, kind: str, period: int = 0) -> int:
    from deployments.notifications import dispatch as notifications

    return len(notifications.plan_notifications(request_id=request_id, kind=kind, period=period))


@shared_task(bind=True, name="deployments.deliver_notification", acks_late=True, max_retries=NOTIFICATION_MAX_RETRIES)
@as_system_actor
def deliver_notification(self, log_id: int) -> str:
    """Send one notification; on failure retry with capped exponential backoff and jitter, then give up."""
    from deployments.notifications import dispatch as notifications

    try:
        return notifications.deliver(log_id=log_id)
    except notifications.DeliveryFailed as exc:
        # Counted on the row, so a delivery re-enqueued by the sweep does not start over.
        if exc.attempts > self.max_retries:
            notifications.give_up(log_id=log_id)
            return "failed"
        raise self.retry(exc=exc, countdown=notifications.NOTIFICATIONS.retry_delay(exc.attempts)) from exc


@shared_task(name="deployments.send_notification_reminders", acks_late=True)
@as_system_actor
def send_notification_reminders() -> dict:
    from deployments.notifications import dispatch as notifications

    return notifications.sweep()


@shared_task(name="deployments.reconcile_deployments", acks_late=True)
@as_system_actor
def reconcile_deployments() -> dict:
    """Ask each installed CI integration for deployments whose event never arrived, then re-scan the
    portal's own executions and decisions. The local counts stay at the top level; each integration's
    result is under its name (e.g. ``github``), saying what it did or why it was skipped. A failing
    integration never stops the local re-scan. Each run is kept as a ``ReconciliationRun``."""
    from deployments.detection import reconciliation

    return reconciliation.run_reconciliation()
