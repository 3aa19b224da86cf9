"""The one way to alert the administrators: an e-mail to every active administrator with an
address, sent after the current transaction commits (so a rolled-back change alerts no one)."""

from __future__ import annotations

import logging

from django.core.mail import send_mail
from django.db import transaction

from .violations import administrators

logger = logging.getLogger(__name__)


def administrator_emails() -> list[str]:
    return sorted(set(administrators().values_list("email", flat=True)))


def alert_administrators(subject: str, message: str) -> None:
    """E-mail every active administrator with an address, after the current transaction commits."""
    recipients = administrator_emails()
    logger.warning("Alert to administrators: %s", subject)
    if recipients:
        transaction.on_commit(
            lambda: send_mail(f"[deployment portal] {subject}", message, None, recipients, fail_silently=True)
        )
