"""Violations: open (deduplicated), investigate, close with notes, escalate when unacknowledged.

``deployments`` (and later the SCM integrations) call ``open_violation``; administrators move a
violation through open → investigating → resolved | risk accepted, each step with notes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from portal.links import absolute_url

from ..errors import RuleViolation
from ..people.alerts import alert_administrators
from ..people.identity import system_actor
from ..people.roles import Role, has_role
from .models import (
    Severity,
    Violation,
    ViolationEvent,
    ViolationEventKind,
    ViolationKind,
    ViolationStatus,
)

ALLOWED_TRANSITIONS = {
    ViolationStatus.OPEN: {ViolationStatus.INVESTIGATING},
    ViolationStatus.INVESTIGATING: {ViolationStatus.RESOLVED, ViolationStatus.RISK_ACCEPTED},
    ViolationStatus.RESOLVED: set(),
    ViolationStatus.RISK_ACCEPTED: set(),
}


def _owner_email(violation: Violation) -> list[str]:
    """The owner hears about their violation too (the administrators always do)."""
    if violation.owner_id and violation.owner.is_active and violation.owner.email:
        return [violation.owner.email]
    return []


def violation_url(violation: Violation) -> str:
    return absolute_url("monitoring:violation_detail", violation.pk)


def _notify_opened(violation_id: int) -> None:
    violation = Violation.objects.select_related("owner").get(pk=violation_id)
    alert_administrators(
        f"[{violation.get_severity_display()}] Violation: {violation.title}",
        f"{violation.get_kind_display()} detected at {violation.detected_at:%Y-%m-%d %H:%M} UTC.\n"
        f"Acknowledge before {violation.ack_deadline:%Y-%m-%d %H:%M} UTC.\n\n{violation_url(violation)}\n",
        also_to=_owner_email(violation),
    )


@transaction.atomic
def open_violation(
    *,
    kind: str,
    severity: str,
    title: str,
    evidence: dict[str, Any],
    dedup_key: str,
    evidence_links: list[dict[str, str]] | None = None,
    subject: str = "",
    source: str = "event",
    owner=None,
    detected_at: datetime | None = None,
    actor=None,
) -> Violation:
    """Open a violation for an event, or return the one already opened for the same ``dedup_key``.

    ``violation.created`` tells the caller which happened. Administrators (and the owner) get an
    e-mail after commit for a new one.
    """
    if kind not in ViolationKind.values:
        raise ValueError(f"unknown violation kind {kind!r}")
    if severity not in Severity.values:
        raise ValueError(f"unknown severity {severity!r}")
    if not dedup_key:
        raise ValueError("a violation needs a dedup key")
    existing = Violation.objects.filter(dedup_key=dedup_key).first()
    if existing is not None:
        existing.created = False
        return existing
    detected_at = detected_at or timezone.now()
    if actor is None:
        actor = system_actor()
    violation, created = Violation.objects.get_or_create(
        dedup_key=dedup_key,
        defaults={
            "kind": kind,
            "severity": severity,
            "title": title[:300],
            "subject": subject[:300],
            "evidence": evidence,
            "evidence_links": list(evidence_links or []),
            "source": source,
            "owner": owner,
            "detected_at": detected_at,
            "ack_deadline": detected_at + timedelta(hours=settings.PORTAL_VIOLATION_ACK_HOURS),
        },
    )
    violation.created = created
    if created:
        ViolationEvent.objects.create(
            violation=violation, kind=ViolationEventKind.OPENED, to_status=ViolationStatus.OPEN,
            actor=actor, notes=f"Detected by {source}.",
        )
        transaction.on_commit(lambda: _notify_opened(violation.pk), robust=True)
    return violation


def _require_administrator(actor) -> None:
    if not has_role(actor, Role.ADMINISTRATOR):
        raise RuleViolation("not_permitted", "Only administrators handle violations.", status_code=403)


@transaction.atomic
def transition_violation(*, actor, violation: Violation, to_status: str, notes: str) -> Violation:
    """Move a violation along its workflow; notes are mandatory and every step is recorded."""
    _require_administrator(actor)
    notes = (notes or "").strip()
    if not notes:
        raise RuleViolation("notes_required", "Every step of an investigation needs notes.", status_code=400)
    locked = Violation.objects.select_for_update(no_key=True, of=("self",)).get(pk=violation.pk)
    if to_status not in ALLOWED_TRANSITIONS.get(locked.status, set()):
        raise RuleViolation(
            "invalid_transition",
            f"A violation that is {locked.get_status_display().lower()} cannot become "
            f"{ViolationStatus(to_status).label.lower() if to_status in ViolationStatus.values else to_status!r}.",
        )
    now = timezone.now()
    old = locked.status
    locked.status = to_status
    fields = ["status"]
    if to_status == ViolationStatus.INVESTIGATING:
        locked.acknowledged_at = now
        fields.append("acknowledged_at")
        if locked.owner_id is None:
            locked.owner = actor
            fields.append("owner")
    else:
        locked.closed_at = now
        locked.resolution_notes = notes
        fields += ["closed_at", "resolution_notes"]
    locked.save(update_fields=fields)
    ViolationEvent.objects.create(
        violation=locked, kind=ViolationEventKind.TRANSITION, from_status=old, to_status=to_status,
        actor=actor, notes=notes,
    )
    return locked


@transaction.atomic
def assign_violation_owner(*, actor, violation: Violation, owner, notes: str = "") -> Violation:
    """Make ``owner`` (an active administrator) responsible for a violation."""
    _require_administrator(actor)
    if not has_role(owner, Role.ADMINISTRATOR):
        raise RuleViolation("invalid_owner", "A violation's owner must be an active administrator.", status_code=400)
    locked = Violation.objects.select_for_update(no_key=True, of=("self",)).get(pk=violation.pk)
    if locked.is_closed:
        raise RuleViolation("violation_closed", "This violation is closed.")
    locked.owner = owner
    locked.save(update_fields=["owner"])
    ViolationEvent.objects.create(
        violation=locked, kind=ViolationEventKind.OWNER, actor=actor,
        notes=(notes or "").strip() or f"Owner: {owner.username}.",
    )
    return locked


def escalate_overdue_violations(*, actor, now: datetime | None = None) -> int:
    """E-mail administrators and the owner about open violations past their acknowledgement deadline.

    Each violation is escalated once: it is claimed with a conditional UPDATE, so running this twice
    (or on two workers) sends one e-mail.
    """
    now = now or timezone.now()
    escalated = 0
    due = Violation.objects.filter(status=ViolationStatus.OPEN, escalated_at__isnull=True, ack_deadline__lte=now)
    for pk in list(due.values_list("pk", flat=True)):
        with transaction.atomic():
            claimed = Violation.objects.filter(pk=pk, status=ViolationStatus.OPEN, escalated_at__isnull=True).update(
                escalated_at=now
            )
            if not claimed:
                continue
            violation = Violation.objects.select_related("owner").get(pk=pk)
            ViolationEvent.objects.create(
                violation=violation, kind=ViolationEventKind.ESCALATED, actor=actor,
                notes=f"Not acknowledged by {violation.ack_deadline:%Y-%m-%d %H:%M} UTC.",
            )
            _send_escalation(violation)
            escalated += 1
    return escalated


def _send_escalation(violation: Violation) -> None:
    """Sent after the claim commits (``alert_administrators`` waits for the commit)."""
    alert_administrators(
        f"ESCALATION: violation #{violation.pk} not acknowledged: {violation.title}",
        f"{violation.get_kind_display()} ({violation.get_severity_display()}) detected at "
        f"{violation.detected_at:%Y-%m-%d %H:%M} UTC was not acknowledged by its deadline "
        f"{violation.ack_deadline:%Y-%m-%d %H:%M} UTC.\n"
        f"Owner: {violation.owner.username if violation.owner else 'nobody'}.\n\n{violation_url(violation)}\n",
        also_to=_owner_email(violation),
    )
