"""Thin Celery tasks for the audit trail and violations (run as the system actor)."""

from __future__ import annotations

import logging

from celery import shared_task
from django.core.mail import send_mail

from .audit import as_system_actor

logger = logging.getLogger(__name__)


@shared_task(name="compliance.seal_audit_chain", acks_late=True)
@as_system_actor
def seal_audit_chain() -> int:
    from .audit_chain import seal_chain

    # The debounce key expires by itself (its timeout equals the countdown), so writes during this
    # run queue at most one more run; the every-minute beat run catches anything else.
    return seal_chain()


@shared_task(name="compliance.verify_audit_chain", acks_late=True)
@as_system_actor
def verify_audit_chain() -> bool:
    """Seal what is due, verify the whole chain, and e-mail administrators when it is broken."""
    from .audit_chain import seal_chain, verify_chain
    from .violations import administrators

    seal_chain()
    report = verify_chain()
    if report.ok:
        return True
    logger.error("Audit chain verification failed: %s", report.summary())
    recipients = sorted(set(administrators().values_list("email", flat=True)))
    if recipients:
        send_mail(
            "ALERT: the audit trail failed verification",
            "The daily verification of the tamper-evident audit chain failed:\n\n"
            f"{report.summary()}\n\nInvestigate with `manage.py verify_audit_chain`.\n",
            None,
            recipients,
        )
    return False


@shared_task(name="compliance.escalate_overdue_violations", acks_late=True)
@as_system_actor
def escalate_overdue_violations() -> int:
    from .services import system_actor
    from .violations import escalate_overdue_violations as escalate

    return escalate(actor=system_actor())
