"""Thin Celery tasks: load, call a service as the system actor, own the retry policy."""

from celery import shared_task

from compliance.people.identity import as_system_actor, system_actor

from . import services


@shared_task(name="deployments.expire_due_requests", acks_late=True)
@as_system_actor
def expire_due_requests() -> int:
    return services.expire_due_requests(actor=system_actor())


@shared_task(name="deployments.deliver_decision", acks_late=True)
@as_system_actor
def deliver_decision(delivery_id: int) -> bool:
    """One attempt at delivering a decision (a no-op when it is not due or another worker holds it)."""
    from . import delivery

    return delivery.attempt_delivery(delivery_id=delivery_id) is not None


@shared_task(name="deployments.sweep_deliveries", acks_late=True)
@as_system_actor
def sweep_deliveries() -> int:
    """Re-enqueue due and stuck decision deliveries."""
    from . import delivery

    return delivery.sweep_deliveries()


from .github.tasks import (  # noqa: E402,F401  (registers the GitHub integration's tasks)
    audit_branch_protection,
    process_github_delivery,
    refresh_pending_checks,
    requeue_stale_deliveries,
)

# --- notifications ------------------------------------------------------------------------------

NOTIFICATION_MAX_RETRIES = 8


@shared_task(name="deployments.notify_request", acks_late=True)
@as_system_actor
def notify_request(request_id: int, kind: str, period: int = 0) -> int:
    from . import notifications

    return len(notifications.plan_notifications(request_id=request_id, kind=kind, period=period))


@shared_task(bind=True, name="deployments.deliver_notification", acks_late=True, max_retries=NOTIFICATION_MAX_RETRIES)
@as_system_actor
def deliver_notification(self, log_id: int) -> str:
    """Send one notification; on failure retry with capped exponential backoff and jitter, then give up."""
    import random

    from . import notifications

    try:
        return notifications.deliver(log_id=log_id)
    except notifications.DeliveryFailed as exc:
        # Counted on the row, so a delivery re-enqueued by the sweep does not start over.
        if exc.attempts > self.max_retries:
            notifications.give_up(log_id=log_id)
            return "failed"
        countdown = min(3600, 30 * 2 ** (exc.attempts - 1)) + random.uniform(0, 10)
        raise self.retry(exc=exc, countdown=countdown) from exc


@shared_task(name="deployments.send_notification_reminders", acks_late=True)
@as_system_actor
def send_notification_reminders() -> dict:
    from . import notifications

    return notifications.sweep()


@shared_task(name="deployments.reconcile_deployments", acks_late=True)
@as_system_actor
def reconcile_deployments() -> dict:
    """Ask GitHub for deployments whose webhook never arrived (only when the GitHub App is
    configured), then re-scan the portal's own executions and decisions. The local counts stay at the
    top level; ``github`` says what GitHub reconciliation did, or why it was skipped. A failure of
    the GitHub part never stops the local re-scan. Each run is kept as a ``ReconciliationRun``."""
    from . import detection
    from .github import reconciliation

    return detection.run_reconciliation(github=reconciliation.reconcile_github_deployments)
