"""Suspensions: an administrator (or the training enforcement) suspends a person's deployment
privileges; an administrator lifts them with a reason — never their own."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from ..choices import SuspensionScope, SuspensionTrigger
from ..errors import RuleViolation
from .identity import is_system_actor
from .models import Suspension
from .privileges import refuse
from .roles import administers


@transaction.atomic
def suspend_user(
    *,
    actor,
    user,
    reason: str,
    trigger: str = SuspensionTrigger.MANUAL,
    scope: str = SuspensionScope.ALL,
    details: dict | None = None,
) -> Suspension:
    """Suspend ``user``'s deployment privileges in ``scope`` from now on."""
    if not reason.strip():
        raise RuleViolation("reason_required", "A suspension needs a reason.", status_code=400)
    try:
        with transaction.atomic():
            return Suspension.objects.create(
                user=user,
                scope=scope,
                trigger=trigger,
                reason=reason.strip(),
                started_at=timezone.now(),
                created_by=actor,
                details=details or {},
            )
    except IntegrityError as exc:  # one active training suspension per person (database constraint)
        raise RuleViolation(
            "already_suspended", f"{user} is already suspended for lapsed training.", status_code=409
        ) from exc


def lift_suspension(*, actor, suspension: Suspension, reason: str) -> Suspension:
    """Lift an active suspension; the reason is kept as evidence.

    Only an administrator (or the portal itself, when training is completed) lifts a suspension,
    and never their own: lifting restores privileges. A refusal is recorded before anything is locked.
    """
    if not is_system_actor(actor):
        if not administers(actor):
            refuse(
                actor=actor, subject=suspension.user, code="not_permitted", privilege="suspension lifted",
                message="Only administrators lift suspensions.",
            )
        if suspension.user_id == actor.pk:
            refuse(
                actor=actor, subject=suspension.user, code="self_privilege_change", privilege="suspension lifted",
                message="You cannot lift your own suspension. Another administrator has to do it.",
            )
    return record_lift(actor=actor, suspension=suspension, reason=reason)


@transaction.atomic
def record_lift(*, actor, suspension: Suspension, reason: str) -> Suspension:
    """Lift ``suspension`` as ``actor`` without the permission check (the portal lifting a training
    suspension once the person is trained); the reason is kept as evidence."""
    if not reason.strip():
        raise RuleViolation("reason_required", "Lifting a suspension needs a reason.", status_code=400)
    locked = Suspension.objects.select_for_update(no_key=True, of=("self",)).get(pk=suspension.pk)
    if locked.lifted_at is not None:
        raise RuleViolation("already_lifted", "This suspension has already been lifted.")
    locked.lifted_at = timezone.now()
    locked.lifted_by = actor
    locked.lift_reason = reason.strip()
    locked.save(update_fields=["lifted_at", "lifted_by", "lift_reason"])
    return locked
