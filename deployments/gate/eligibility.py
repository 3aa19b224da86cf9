"""May this person decide this request now, and if not, why: the one answer.

``decision_refusal`` returns the first rule that stops ``user`` deciding ``request`` (``None`` when
nothing does), in this order:

1. the request is not decidable: its checks have not passed (``checks_not_passed``), it was already
   decided or is over (``already_decided`` / ``request_terminal``), or it expired (``request_expired``);
2. the role and the environment's approve permission (``not_permitted``, ``permissions.can_act``);
3. the compliance acting gates (suspension, training: ``compliance.people.gates.acting_refusal``);
4. separation of duties and identity gaps (``policy.eligibility_refusal``, decision-aware: a
   rejection is never refused for an identity gap);
5. one decision per person (``duplicate_decision``);
6. a freeze in force for a non-emergency request (``freeze_in_effect``).

The services call it under the request's row lock, the decision form and the approval queue to
show only what may be done, notifications to tell only who may decide, and detection to find
decisions nobody should have been able to make. The rules themselves stay in ``policy`` (pure);
this module gathers the facts and writes nothing.

Lists (the approval queue) gather what depends on the person alone once — a ``Standing`` — so the
number of queries does not grow with the rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from compliance.errors import RuleViolation
from compliance.people.gates import acting_refusal
from compliance.people.identity import identities_of
from deployments.choices import Decision, RequestStatus
from deployments.gate import permissions, policy
from deployments.gate.facts import environment_in_freeze, facts_for
from deployments.models import Approval, DeploymentRequest, FreezeWindow

# Which rule a refusal comes from (``decision_refusals``).
REQUEST = "request"
PERMISSION = "permission"
COMPLIANCE = "compliance"
SEPARATION_OF_DUTIES = "separation_of_duties"
DUPLICATE = "duplicate"
FREEZE = "freeze"


@dataclass(frozen=True)
class Standing:
    """What the rules need to know about one person, gathered once for many requests."""

    identities: frozenset[str]
    approve_environment_ids: frozenset[int]
    gate_refusal: RuleViolation | None
    # Environments (ids) in a freeze at ``at``; None: look each one up.
    frozen_environment_ids: frozenset[int] | None = None
    at: datetime | None = None


def standing_of(user, *, now: datetime | None = None, with_freezes: bool = False) -> Standing:
    """``user``'s standing at ``now``: identities, where they may approve, the acting gates, and
    (``with_freezes``) which of those environments are frozen — a fixed number of queries."""
    now = now or timezone.now()
    environment_ids = frozenset(permissions.environments_for(user, permissions.APPROVE).values_list("pk", flat=True))
    frozen = None
    if with_freezes:
        frozen = frozenset(
            FreezeWindow.objects.filter(
                environment_id__in=list(environment_ids), starts_at__lte=now, ends_at__gt=now
            ).values_list("environment_id", flat=True)
        )
    return Standing(
        identities=identities_of(user),
        approve_environment_ids=environment_ids,
        gate_refusal=acting_refusal(user=user, action="approve"),
        frozen_environment_ids=frozen,
        at=now,
    )


def _expired() -> RuleViolation:
    return RuleViolation("request_expired", "The request expired before it was decided (request time limit).")


def _request_refusal(
    request: DeploymentRequest, *, now: datetime, checks_pending_ok: bool, approvals: list[Approval]
) -> RuleViolation | None:
    if request.status == RequestStatus.PENDING_CHECKS:
        if checks_pending_ok:
            return None
        facts = facts_for(request, approvals)
        missing, _ = policy.check_summary(facts.rules.required_checks, policy.effective_checks(facts))
        return RuleViolation(
            "checks_not_passed",
            f"Required checks have not passed yet: {', '.join(missing)}. A request can only be decided "
            "once its checks pass.",
            details={"missing_checks": list(missing)},
        )
    if request.status != RequestStatus.AWAITING_APPROVAL:
        return RuleViolation(
            "request_terminal" if request.is_terminal else "already_decided",
            f"The request is {request.get_status_display().lower()}; it can no longer be decided.",
            details={"status": request.status},
        )
    if now >= request.expires_at:
        return _expired()
    return None


def decision_refusals(
    *,
    user,
    request: DeploymentRequest,
    decision: str = Decision.APPROVE,
    now: datetime | None = None,
    approvals: Iterable[Approval] | None = None,
    standing: Standing | None = None,
    checks_pending_ok: bool = False,
    live: bool = True,
) -> Iterator[tuple[str, RuleViolation]]:
    """Every rule that stops ``user`` making ``decision`` on ``request`` at ``now``, in order, lazily,
    as (which rule, the refusal) — ``decision_refusal`` takes the first; detection collects them all.

    ``approvals``: the request's decisions to count (default: all of them; detection passes the
    others). ``checks_pending_ok``: a request still waiting for its checks counts as decidable (who
    will be able to decide once they pass). ``live=False`` re-evaluates a past decision after the
    fact: only what the records still tell is checked (the request's own facts, its expiry, freezes);
    the request's state, today's permissions and today's compliance gates say nothing about then.
    """
    now = now or timezone.now()
    approvals = list(request.approvals.all() if approvals is None else approvals)
    if live:
        refusal = _request_refusal(request, now=now, checks_pending_ok=checks_pending_ok, approvals=approvals)
        if refusal is not None:
            yield REQUEST, refusal
            return
        permitted = (
            request.environment_id in standing.approve_environment_ids
            if standing is not None
            else permissions.can_act(user, permissions.APPROVE, request.environment)
        )
        if not permitted:
            yield PERMISSION, RuleViolation(
                "not_permitted",
                f"You do not hold the deployment approver role with approval permission for {request.environment}.",
                status_code=403,
            )
        gate = standing.gate_refusal if standing is not None else acting_refusal(user=user, action="approve")
        if gate is not None:
            yield COMPLIANCE, gate
    elif now >= request.expires_at:
        yield REQUEST, _expired()
    identities = standing.identities if standing is not None else identities_of(user)
    ineligible = policy.eligibility_refusal(
        policy.Person(user.pk, identities), facts_for(request, approvals), decision=decision
    )
    if ineligible is not None:
        yield SEPARATION_OF_DUTIES, ineligible
    if any(a.approver_id == user.pk for a in approvals):
        yield DUPLICATE, RuleViolation(
            "duplicate_decision", "You have already decided on this request; each person decides once."
        )
    if not request.is_emergency:
        if standing is not None and standing.frozen_environment_ids is not None and standing.at == now:
            frozen = request.environment_id in standing.frozen_environment_ids
        else:
            frozen = environment_in_freeze(request.environment, now) is not None
        if frozen:
            yield FREEZE, RuleViolation(
                "freeze_in_effect",
                "A deployment freeze started after this request was submitted; only emergency requests may be "
                "approved during a freeze.",
            )


def decision_refusal(
    *,
    user,
    request: DeploymentRequest,
    decision: str = Decision.APPROVE,
    now: datetime | None = None,
    approvals: Iterable[Approval] | None = None,
    standing: Standing | None = None,
    checks_pending_ok: bool = False,
) -> RuleViolation | None:
    """The first rule that stops ``user`` making ``decision`` on ``request`` now, or None."""
    for _rule, refusal in decision_refusals(
        user=user, request=request, decision=decision, now=now, approvals=approvals, standing=standing,
        checks_pending_ok=checks_pending_ok,
    ):
        return refusal
    return None


def may_decide(*, user, request: DeploymentRequest, **kwargs) -> bool:
    """Whether ``user`` may approve or reject ``request`` now (the queue, notifications)."""
    return any(
        decision_refusal(user=user, request=request, decision=decision, **kwargs) is None
        for decision in (Decision.APPROVE, Decision.REJECT)
    )
