"""Thin Celery tasks: load, call a service as the system actor, own the retry policy."""

from celery import shared_task

from compliance.audit import as_system_actor
from compliance.services import system_actor

from . import services


@shared_task(name="deployments.expire_due_requests", acks_late=True)
@as_system_actor
def expire_due_requests() -> int:
    return services.expire_due_requests(actor=system_actor())


@shared_task(name="deployments.reconcile_deployments", acks_late=True)
@as_system_actor
def reconcile_deployments() -> dict:
    from . import detection

    return detection.reconcile()
