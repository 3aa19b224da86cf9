"""Thin Celery tasks for training enforcement."""

from celery import shared_task

from .audit import as_system_actor
from .services import enforce_training as enforce_training_service
from .services import system_actor


@shared_task(name="compliance.enforce_training", acks_late=True)
@as_system_actor
def enforce_training() -> dict[str, int]:
    """Reminders before and after deadlines, suspensions for lapsed training, lifting resolved ones."""
    return enforce_training_service(actor=system_actor())
