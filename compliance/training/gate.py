"""The training gate: requesting or approving needs current training for the role involved."""

from __future__ import annotations

from ..errors import RuleViolation
from ..people.gates import register_gate
from ..people.roles import ROLE_LABELS, Role
from .selectors import missing_training, training_url

ACTION_ROLE = {"request": Role.ENGINEER, "approve": Role.APPROVER}
ACTION_WORDS = {"request": "request deployments", "approve": "approve deployments"}


def _article(noun: str) -> str:
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


@register_gate
def training_gate(*, user, action: str) -> RuleViolation | None:
    """Refuse a person without a current attestation for every course of the role ``action`` needs.

    Service accounts are not people and are not trained; the decision is re-evaluated at every
    action, so an expiry or a new policy version takes effect in an open session at once.
    """
    role = ACTION_ROLE.get(action)
    if role is None or user is None or getattr(user, "is_service_account", False):
        return None
    missing = missing_training(user=user, role=role)
    if not missing:
        return None
    url = training_url()
    listed = "; ".join(f"{row.course.title} ({row.standing.reason})" for row in missing)
    return RuleViolation(
        "training_required",
        f"You need current training as {_article(ROLE_LABELS[role])} to {ACTION_WORDS[action]}: {listed}. "
        f"Complete it at {url}",
        details={
            "training_url": url,
            "role": str(role),
            "missing_courses": [
                {
                    "slug": row.course.slug,
                    "title": row.course.title,
                    "status": str(row.status),
                    "reason": row.standing.reason,
                }
                for row in missing
            ],
        },
        status_code=403,
    )
