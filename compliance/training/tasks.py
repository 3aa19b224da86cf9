"""Thin Celery tasks for training enforcement."""

from celery import shared_task

from ..people.identity import as_system_actor, system_actor
from .enforcement import enforce_training as enforce_training_service


@shared_task(name="compliance.enforce_training", acks_late=True)
@as_system_actor
def enforce_training() -> dict[str, int]:
    """Reminders before and after deadlines, suspensions for lapsed training, lifting resolved ones."""
    return enforce_training_service(actor=system_actor())
