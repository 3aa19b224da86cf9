"""Is this person allowed to act in a role right now?

``deployments`` asks ``acting_refusal(user=..., action=...)`` at decision time, inside the
transaction that changes state, so a suspension (or, with the training work, a lapsed
attestation) takes effect at once. Other compliance checks plug in with ``register_gate``.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db.models import Q

from ..choices import SuspensionScope
from ..errors import RuleViolation
from .models import Suspension

Gate = Callable[..., RuleViolation | None]
_gates: list[Gate] = []


def register_gate(gate: Gate) -> Gate:
    """Add a check ``gate(*, user, action) -> RuleViolation | None``; usable as a decorator."""
    if gate not in _gates:
        _gates.append(gate)
    return gate


def active_suspension(*, user, action: str) -> Suspension | None:
    scopes = [SuspensionScope.ALL, action]
    return (
        Suspension.objects.filter(Q(user=user) & Q(lifted_at__isnull=True) & Q(scope__in=scopes))
        .order_by("-started_at")
        .first()
    )


@register_gate
def suspension_gate(*, user, action: str) -> RuleViolation | None:
    suspension = active_suspension(user=user, action=action)
    if suspension is None:
        return None
    return RuleViolation(
        "suspended",
        f"Your deployment privileges are suspended since {suspension.started_at:%Y-%m-%d %H:%M} UTC "
        f"({suspension.get_trigger_display().lower()}): {suspension.reason}",
        details={"suspension_id": suspension.pk},
        status_code=403,
    )


def acting_refusal(*, user, action: str) -> RuleViolation | None:
    """The first refusal any gate gives ``user`` for ``action`` ("request" or "approve")."""
    for gate in _gates:
        refusal = gate(user=user, action=action)
        if refusal is not None:
            return refusal
    return None
