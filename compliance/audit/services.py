"""What the audit trail's jobs do: seal then sign a checkpoint, alert on forged rows, verify and
alert, and e-mail the latest checkpoint to the auditors."""

from __future__ import annotations

import logging

from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage
from django.db import transaction
from django.utils import timezone

from ..people.alerts import SUBJECT_PREFIX, alert_administrators
from ..people.roles import Role
from . import checkpoints
from .chain import seal_chain
from .keys import public_key_fingerprint, public_key_pem, using_development_keys
from .models import ForgedEntry
from .verify import verify_chain

logger = logging.getLogger(__name__)


def seal_and_checkpoint(*, force_checkpoint: bool = False, full: bool = False) -> int:
    """Link what is due, alert about rows that were not written through the portal, then sign the
    new head into the checkpoint log. Returns how many rows were linked."""
    linked = seal_chain(full=full)
    alert_forged_entries()
    try:
        checkpoints.record_checkpoint(force=force_checkpoint)
    except OSError:
        logger.exception("Could not write the audit checkpoint to %s", checkpoints.checkpoint_dir())
    return linked


def alert_forged_entries() -> int:
    """E-mail administrators once about every forged row the sealer refused."""
    with transaction.atomic():
        fresh = list(ForgedEntry.objects.select_for_update().filter(alerted_at__isnull=True).order_by("id")[:500])
        if not fresh:
            return 0
        listing = "\n".join(f"- {f.model_label} #{f.object_id}: {f.reason}" for f in fresh)
        alert_administrators(
            "ALERT: rows were written into the audit trail without going through the portal",
            f"The audit-chain sealer refused to link {len(fresh)} row(s) that carry no valid write-time tag, "
            f"so they were inserted straight into the database:\n\n{listing}\n\n"
            "Investigate who had database access, and run `manage.py verify_audit_chain`.\n",
        )
        ForgedEntry.objects.filter(pk__in=[f.pk for f in fresh]).update(alerted_at=timezone.now())
    return len(fresh)


def verify_and_alert() -> bool:
    seal_and_checkpoint(full=True)
    report = verify_chain()
    if report.ok:
        return True
    logger.error("Audit chain verification failed: %s", report.summary())
    alert_administrators(
        "ALERT: the audit trail failed verification",
        "The daily verification of the tamper-evident audit trail failed:\n\n"
        f"{report.summary()}\n\nInvestigate with `manage.py verify_audit_chain`.\n",
    )
    return False


def auditor_emails() -> list[str]:
    people = get_user_model().objects.filter(groups__name=str(Role.AUDITOR), is_active=True).exclude(email="")
    return sorted(set(people.values_list("email", flat=True)))


def email_checkpoint_to_auditors() -> int:
    """Sign a checkpoint now and e-mail it with the public key's fingerprint to every auditor."""
    seal_and_checkpoint(force_checkpoint=True)
    latest = checkpoints.latest()
    recipients = auditor_emails()
    if latest is None or not recipients:
        return 0
    warning = (
        "\nWARNING: this portal signs with its DEVELOPMENT key; its checkpoints prove nothing.\n"
        if using_development_keys() else ""
    )
    body = (
        "The deployment portal's signed audit checkpoint of today. Keep this e-mail: with it you can "
        "later prove that the audit trail up to this point was not rewritten or cut short "
        "(docs/audit-trail.md, 'How an auditor verifies').\n"
        f"{warning}\nLink: {latest.seq}\nHead hash: {latest.head_hash}\nPublic hash: {latest.public_hash}\n"
        f"Time: {latest.time}\nSigning key fingerprint (SHA-256): {public_key_fingerprint()}\n\n"
        f"Checkpoint (one line, attached as checkpoint.jsonl):\n{latest.line()}\n"
    )
    message = EmailMessage(f"{SUBJECT_PREFIX}Audit checkpoint at link {latest.seq}", body, None, recipients)
    message.attach("checkpoint.jsonl", latest.line() + "\n", "application/jsonl")
    message.attach("signing-public-key.pem", public_key_pem(), "application/x-pem-file")
    message.send(fail_silently=False)
    return len(recipients)
