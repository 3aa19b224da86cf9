"""The one way to alert the administrators: an e-mail to every active administrator with an
address (and anyone else concerned, e.g. a violation's owner), sent after the current transaction
commits (so a rolled-back change alerts no one). Every alert has the same subject prefix."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction

from .roles import Role

logger = logging.getLogger(__name__)

SUBJECT_PREFIX = "[deployment portal] "


def administrators():
    """Active members of the Administrators group who have an e-mail address."""
    return get_user_model().objects.filter(groups__name=str(Role.ADMINISTRATOR), is_active=True).exclude(email="")


def administrator_emails() -> list[str]:
    return sorted(set(administrators().values_list("email", flat=True)))


def alert_administrators(subject: str, message: str, *, also_to: Iterable[str] = ()) -> list[str]:
    """E-mail every active administrator with an address (and ``also_to``), after the current
    transaction commits; returns the recipients (none: the alert is only logged)."""
    recipients = sorted(set(administrator_emails()) | {address for address in also_to if address})
    logger.warning("Alert to administrators: %s", subject)
    if not recipients:
        logger.warning("No administrator has an e-mail address; the alert was not sent: %s", subject)
        return []
    transaction.on_commit(
        lambda: send_mail(f"{SUBJECT_PREFIX}{subject}", message, None, recipients, fail_silently=True)
    )
    return recipients
