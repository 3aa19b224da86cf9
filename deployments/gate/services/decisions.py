"""Decisions: approve and reject, with every rule of the policy checked under the request's row lock."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from compliance.errors import RuleViolation
from compliance.people.gates import acting_refusal
from deployments.choices import (
    Action,
    Decision,
    EventKind,
    RequestStatus,
)
from deployments.gate import permissions, policy
from deployments.gate.services.common import (
    _apply_verdict,
    _event,
    _identities,
    _lock,
    _records_refusals,
    environment_in_freeze,
    facts_for,
)
from deployments.models import (
    Approval,
    DeploymentRequest,
)
from deployments.signals import decision_recorded

# --- decisions ----------------------------------------------------------------------------------


def _refuse_unless_decidable(request: DeploymentRequest, *, actor, now: datetime) -> None:
    if request.status == RequestStatus.PENDING_CHECKS:
        facts = facts_for(request)
        missing, _ = policy.check_summary(facts.rules.required_checks, policy.effective_checks(facts))
        raise RuleViolation(
            "checks_not_passed",
            f"Required checks have not passed yet: {', '.join(missing)}. A request can only be decided "
            "once its checks pass.",
            details={"missing_checks": list(missing)},
        )
    if request.status != RequestStatus.AWAITING_APPROVAL:
        raise RuleViolation(
            "request_terminal" if request.is_terminal else "already_decided",
            f"The request is {request.get_status_display().lower()}; it can no longer be decided.",
            details={"status": request.status},
        )
    if now >= request.expires_at:
        # The refusal handler expires the request in its own transaction once this one rolls back.
        raise RuleViolation("request_expired", "The request expired before it was decided (request time limit).")


def _refuse_ineligible(request: DeploymentRequest, *, actor, now: datetime, decision: str) -> None:
    if not permissions.can_act(actor, permissions.APPROVE, request.environment):
        raise RuleViolation(
            "not_permitted",
            f"You do not hold the deployment approver role with approval permission for {request.environment}.",
            status_code=403,
        )
    refusal = acting_refusal(user=actor, action="approve")
    if refusal is not None:
        raise refusal
    ineligible = policy.eligibility_refusal(
        policy.Person(actor.pk, _identities(actor)), facts_for(request), decision=decision
    )
    if ineligible is not None:
        raise ineligible
    if Approval.objects.filter(request=request, approver=actor).exists():
        raise RuleViolation("duplicate_decision", "You have already decided on this request; each person decides once.")
    if not request.is_emergency and environment_in_freeze(request.environment, now):
        raise RuleViolation(
            "freeze_in_effect",
            "A deployment freeze started after this request was submitted; only emergency requests may be "
            "approved during a freeze.",
        )


def _decide(
    *,
    actor,
    request: DeploymentRequest,
    decision: str,
    comment: str,
    checklist: Mapping[str, bool] | None,
    ip_address: str | None,
) -> Approval:
    now = timezone.now()
    locked = _lock(request)
    _refuse_unless_decidable(locked, actor=actor, now=now)
    _refuse_ineligible(locked, actor=actor, now=now, decision=decision)
    comment = (comment or "").strip()
    checklist = {str(k): bool(v) for k, v in (checklist or {}).items()}
    rules = policy.PolicyRules.from_snapshot(locked.policy_snapshot)
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
                ip_address=ip_address,
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


@_records_refusals(Action.APPROVE)
@transaction.atomic
def approve_request(
    *,
    actor,
    request: DeploymentRequest,
    comment: str = "",
    checklist: Mapping[str, bool] | None = None,
    ip_address: str | None = None,
) -> Approval:
    """Record an approval; the request becomes approved once the policy's quorum is reached."""
    return _decide(
        actor=actor,
        request=request,
        decision=Decision.APPROVE,
        comment=comment,
        checklist=checklist,
        ip_address=ip_address,
    )


@_records_refusals(Action.REJECT)
@transaction.atomic
def reject_request(
    *,
    actor,
    request: DeploymentRequest,
    comment: str,
    checklist: Mapping[str, bool] | None = None,
    ip_address: str | None = None,
) -> Approval:
    """Record a rejection; any rejection rejects the request."""
    return _decide(
        actor=actor,
        request=request,
        decision=Decision.REJECT,
        comment=comment,
        checklist=checklist,
        ip_address=ip_address,
    )
