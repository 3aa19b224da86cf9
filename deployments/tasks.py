"""Thin Celery tasks: load, call a service as the system actor, own the retry policy."""

from celery import shared_task

from compliance.audit import as_system_actor
from compliance.services import system_actor

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
