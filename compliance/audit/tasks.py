"""Thin Celery tasks for the audit trail (run as the system actor)."""

from __future__ import annotations

import logging

from celery import shared_task

from ..people.alerts import alert_administrators
from ..people.identity import as_system_actor
from .chain import SEAL_TASK, seal_chain, verify_chain

logger = logging.getLogger(__name__)


@shared_task(name=SEAL_TASK, acks_late=True)
@as_system_actor
def seal_audit_chain() -> int:
    # The debounce key expires by itself (its timeout equals the countdown), so writes during this
    # run queue at most one more run; the every-minute beat run catches anything else.
    return seal_chain()


@shared_task(name="compliance.verify_audit_chain", acks_late=True)
@as_system_actor
def verify_audit_chain() -> bool:
    """Seal what is due, verify the whole chain, and e-mail administrators when it is broken."""
    seal_chain()
    report = verify_chain()
    if report.ok:
        return True
    logger.error("Audit chain verification failed: %s", report.summary())
    alert_administrators(
        "ALERT: the audit trail failed verification",
        "The daily verification of the tamper-evident audit chain failed:\n\n"
        f"{report.summary()}\n\nInvestigate with `manage.py verify_audit_chain`.\n",
    )
    return False
