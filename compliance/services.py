"""Every write in ``compliance`` goes through these functions."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from .choices import SuspensionScope, SuspensionTrigger
from .errors import RuleViolation
from .models import Suspension

SYSTEM_USERNAME = "portal-system"


def system_actor():
    """The account background jobs act as; it can never sign in."""
    user_model = get_user_model()
    user, _ = user_model.objects.get_or_create(
        username=SYSTEM_USERNAME,
        defaults={"is_active": False, "is_service_account": True, "first_name": "Portal", "last_name": "system"},
    )
    return user


@transaction.atomic
def suspend_user(
    *, actor, user, reason: str, trigger: str = SuspensionTrigger.MANUAL, scope: str = SuspensionScope.ALL
) -> Suspension:
    """Suspend ``user``'s deployment privileges in ``scope`` from now on."""
    if not reason.strip():
        raise RuleViolation("reason_required", "A suspension needs a reason.", status_code=400)
    return Suspension.objects.create(
        user=user,
        scope=scope,
        trigger=trigger,
        reason=reason.strip(),
        started_at=timezone.now(),
        created_by=actor,
    )


@transaction.atomic
def lift_suspension(*, actor, suspension: Suspension, reason: str) -> Suspension:
    """Lift an active suspension; the reason is kept as evidence."""
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
