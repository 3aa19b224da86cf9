"""Thin Celery tasks for the audit trail (run as the system actor)."""

from __future__ import annotations

import logging

from celery import shared_task

from ..people.identity import as_system_actor
from .chain import SEAL_TASK
from .services import email_checkpoint_to_auditors, seal_and_checkpoint, verify_and_alert

logger = logging.getLogger(__name__)


@shared_task(name=SEAL_TASK, acks_late=True)
@as_system_actor
def seal_audit_chain() -> int:
    # The debounce key expires by itself (its timeout equals the countdown), so writes during this
    # run queue at most one more run; the every-minute beat run catches anything else.
    return seal_and_checkpoint()


@shared_task(name="compliance.verify_audit_chain", acks_late=True)
@as_system_actor
def verify_audit_chain() -> bool:
    """Seal what is due, verify the whole trail, and e-mail administrators when it fails."""
    return verify_and_alert()


@shared_task(name="compliance.email_audit_checkpoint", acks_late=True)
@as_system_actor
def email_audit_checkpoint() -> int:
    """Send the day's signed checkpoint to every active auditor (outside the portal's reach)."""
    return email_checkpoint_to_auditors()
