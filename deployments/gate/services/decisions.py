"""Decisions: approve and reject, with every rule of the policy checked under the request's row lock."""

from __future__ import annotations

from collections.abc import Mapping

from django.db import IntegrityError, transaction
from django.utils import timezone

from compliance.errors import RuleViolation
from compliance.identity.evidence import AuthenticationEvidence
from deployments.choices import (
    Action,
    Decision,
    EventKind,
)
from deployments.gate import eligibility, policy
from deployments.gate.facts import facts_for
from deployments.gate.services.common import (
    _apply_verdict,
    _event,
    _lock,
    records_refusals,
)
from deployments.models import (
    Approval,
    DeploymentRequest,
)
from deployments.signals import decision_recorded

# --- decisions ----------------------------------------------------------------------------------


def _decide(
    *,
    actor,
    request: DeploymentRequest,
    decision: str,
    comment: str,
    checklist: Mapping[str, bool] | None,
    ip_address: str | None,
    policy_acknowledged: bool = False,
    authentication: AuthenticationEvidence | None = None,
) -> Approval:
    now = timezone.now()
    locked = _lock(request)
    # The one answer to "may this person decide this request now", under the row lock. (A refused
    # "request_expired" is followed by the expiry, in its own transaction, once this one rolls back.)
    refusal = eligibility.decision_refusal(user=actor, request=locked, decision=decision, now=now)
    if refusal is not None:
        raise refusal
    comment = (comment or "").strip()
    checklist = {str(k): bool(v) for k, v in (checklist or {}).items()}
    rules = policy.PolicyRules.from_snapshot(locked.policy_snapshot)
    authentication = authentication or AuthenticationEvidence()
    step_up = policy.step_up_refusal(rules, method=authentication.method, mfa_at=authentication.mfa_at, now=now)
    if step_up is not None:
        raise step_up
    if decision == Decision.REJECT and not comment:
        raise RuleViolation("comment_required", "A rejection needs a comment explaining why.", status_code=400)
    if decision == Decision.APPROVE:
        unanswered = [item for item in rules.impact_checklist if not checklist.get(item)]
        if unanswered:
            raise RuleViolation(
                "checklist_incomplete",
                f"Confirm every item of the impact checklist before approving: {', '.join(unanswered)}.",
                details={"unanswered": unanswered},
                status_code=400,
            )
    try:
        with transaction.atomic():
            approval = Approval.objects.create(
                request=locked,
                approver=actor,
                decision=decision,
                comment=comment,
                checklist=checklist,
                policy_version=rules.version,
                policy_sha256=policy.snapshot_sha256(locked.policy_snapshot or {}),
                policy_acknowledged=policy_acknowledged,
                ip_address=ip_address,
                authentication_method=authentication.method[:64],
                authenticated_at=authentication.at,
                mfa_authenticated_at=authentication.mfa_at,
            )
    except IntegrityError as exc:
        raise RuleViolation(
            "duplicate_decision", "You have already decided on this request; each person decides once."
        ) from exc
    kind = EventKind.APPROVAL if decision == Decision.APPROVE else EventKind.REJECTION
    data = {"approval_id": approval.pk}
    gaps = policy.identity_gaps(facts_for(locked)) if decision == Decision.APPROVE else ()
    if gaps:
        # Allowed by the policy ("flag"): the approval stands, and the request goes to review.
        data["identity_gaps"] = list(gaps)
        if not locked.flagged_for_review:
            locked.flagged_for_review = True
            locked.save(update_fields=["flagged_for_review", "updated_at"])
    _event(locked, kind, actor=actor, message=comment, data=data)
    decision_recorded.send(sender=Approval, approval=approval)
    _apply_verdict(locked, actor=actor, now=now)
    return approval


@records_refusals(Action.APPROVE)
@transaction.atomic
def approve_request(
    *,
    actor,
    request: DeploymentRequest,
    comment: str = "",
    checklist: Mapping[str, bool] | None = None,
    ip_address: str | None = None,
    policy_acknowledged: bool = False,
    authentication: AuthenticationEvidence | None = None,
) -> Approval:
    """Record an approval; the request becomes approved once the policy's quorum is reached.
    ``policy_acknowledged``: the approver confirmed the policy version (kept with its hash as evidence).
    ``authentication``: how and when the approver last authenticated (``compliance.identity.evidence``),
    checked against the policy's step-up window and kept with the approval; unknown when not given."""
    return _decide(
        actor=actor,
        request=request,
        decision=Decision.APPROVE,
        comment=comment,
        checklist=checklist,
        ip_address=ip_address,
        policy_acknowledged=policy_acknowledged,
        authentication=authentication,
    )


@records_refusals(Action.REJECT)
@transaction.atomic
def reject_request(
    *,
    actor,
    request: DeploymentRequest,
    comment: str,
    checklist: Mapping[str, bool] | None = None,
    ip_address: str | None = None,
    policy_acknowledged: bool = False,
    authentication: AuthenticationEvidence | None = None,
) -> Approval:
    """Record a rejection; any rejection rejects the request."""
    return _decide(
        actor=actor,
        request=request,
        decision=Decision.REJECT,
        comment=comment,
        checklist=checklist,
        ip_address=ip_address,
        policy_acknowledged=policy_acknowledged,
        authentication=authentication,
    )
