"""Every write to a deployment request goes through these functions.

Each one locks the request row (``select_for_update``), checks the rules, writes the state, the
decision and a timeline event in one transaction, and leaves side effects to ``on_commit`` hooks
(see ``signals``). A refused action raises ``RuleViolation`` and is recorded as a ``Refusal`` in
its own transaction, so the evidence survives the rollback of the refused change.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from compliance.errors import RuleViolation
from compliance.people.gates import acting_refusal
from compliance.people.identity import identities_of, resolve_person

from . import permissions, policy
from .choices import (
    OPEN_STATUSES,
    SUPERSEDABLE_STATUSES,
    TERMINAL_STATUSES,
    Action,
    CheckState,
    Decision,
    EventKind,
    ExecutionStatus,
    RequestSource,
    RequestStatus,
    Tier,
    UnverifiedIdentity,
)
from .models import (
    Approval,
    ApprovalPolicy,
    DeploymentRequest,
    Environment,
    Execution,
    FreezeWindow,
    Refusal,
    RequestEvent,
    Service,
)
from .signals import decision_recorded, execution_conflict_reported, execution_recorded, request_transitioned


def record_refusal(
    *,
    actor,
    action: str,
    violation: RuleViolation,
    environment: Environment | None = None,
    request: DeploymentRequest | None = None,
    ip_address: str | None = None,
) -> Refusal:
    """Keep a refused action as evidence (its own transaction, committed even if the caller rolls back
    its work — unless the caller itself wraps everything in an outer transaction)."""
    with transaction.atomic():
        refusal = Refusal.objects.create(
            actor=actor if getattr(actor, "pk", None) else None,
            action=action,
            code=violation.code,
            message=violation.message,
            environment=environment or (request.environment if request else None),
            request=request,
            details=violation.details,
            ip_address=ip_address,
        )
        if request is not None:
            RequestEvent.objects.create(
                request=request,
                kind=EventKind.REFUSED,
                actor=refusal.actor,
                message=f"{Action(action).label} refused: {violation.message}",
                data={"code": violation.code, "refusal_id": refusal.pk},
            )
    return refusal


def _records_refusals(action: str):
    """Decorator: record any ``RuleViolation`` the service raises, then re-raise it."""

    def wrap(func):
        @functools.wraps(func)
        def inner(*, actor, **kwargs):
            try:
                return func(actor=actor, **kwargs)
            except RuleViolation as violation:
                exc = violation
            request = kwargs.get("request")
            environment = kwargs.get("environment")
            if request is not None:
                if exc.code == "request_expired":
                    _expire_if_due(request.pk, actor=actor)
                request = DeploymentRequest.objects.filter(pk=request.pk).first()
            record_refusal(
                actor=actor,
                action=action,
                violation=exc,
                request=request,
                environment=environment if isinstance(environment, Environment) else None,
                ip_address=kwargs.get("ip_address"),
            )
            raise exc

        return inner

    return wrap


# --- configuration ------------------------------------------------------------------------------


def policy_rules(approval_policy: ApprovalPolicy) -> policy.PolicyRules:
    return policy.PolicyRules(
        required_approvals=approval_policy.required_approvals,
        exclude_change_authors=approval_policy.exclude_change_authors,
        required_checks=tuple(approval_policy.required_checks or ()),
        allowed_refs=tuple(approval_policy.allowed_refs or ()),
        request_ttl_seconds=int(approval_policy.request_ttl.total_seconds()),
        approval_ttl_seconds=int(approval_policy.approval_ttl.total_seconds()),
        emergency_extra_approvals=approval_policy.emergency_extra_approvals,
        impact_checklist=tuple(approval_policy.impact_checklist or ()),
        version=approval_policy.version,
        unverified_identity=approval_policy.unverified_identity,
        trusted_checks_only=approval_policy.trusted_checks_only,
    )


STRICT_PRODUCTION_DEFAULTS = {
    "required_approvals": 2,
    "exclude_change_authors": True,
    "required_checks": ["unit", "integration", "lint", "security-scan"],
    "allowed_refs": ["main", "release/*"],
    "unverified_identity": UnverifiedIdentity.REFUSE,
    "trusted_checks_only": True,
}


@transaction.atomic
def create_environment(*, actor, service: Service, name: str, tier: str = Tier.STAGING, **policy_fields) -> Environment:
    """An environment and its approval policy; production gets strict defaults."""
    environment = Environment.objects.create(
        service=service, name=name, tier=tier, is_protected=tier != Tier.DEVELOPMENT
    )
    defaults = dict(STRICT_PRODUCTION_DEFAULTS) if tier == Tier.PRODUCTION else {}
    defaults.update(policy_fields)
    ApprovalPolicy.objects.create(environment=environment, **defaults)
    return environment


@transaction.atomic
def update_policy(*, actor, approval_policy: ApprovalPolicy, **changes) -> ApprovalPolicy:
    """Change a policy and bump its version; open requests keep the snapshot they were submitted with."""
    locked = ApprovalPolicy.objects.select_for_update(no_key=True, of=("self",)).get(pk=approval_policy.pk)
    for key, value in changes.items():
        setattr(locked, key, value)
    locked.version += 1
    locked.full_clean()
    locked.save()
    return locked


# --- helpers ------------------------------------------------------------------------------------


def _lock(request: DeploymentRequest) -> DeploymentRequest:
    return (
        DeploymentRequest.objects.select_for_update(no_key=True, of=("self",))
        .select_related("environment")
        .get(pk=request.pk)
    )


def _event(request: DeploymentRequest, kind: str, *, actor=None, message: str = "", data=None) -> RequestEvent:
    return RequestEvent.objects.create(
        request=request,
        kind=kind,
        actor=actor if getattr(actor, "pk", None) else None,
        message=message,
        data=data or {},
    )


def _transition(
    request: DeploymentRequest, new_status: str, *, actor, reason: str = "", event_kind: str | None = None, **fields
) -> None:
    """Write a status change (the row is already locked) and tell receivers inside the transaction."""
    old_status = request.status
    if old_status in TERMINAL_STATUSES:
        raise RuleViolation("request_terminal", f"The request is already {request.get_status_display().lower()}.")
    request.status = new_status
    request.status_reason = reason
    for key, value in fields.items():
        setattr(request, key, value)
    request.save(update_fields=["status", "status_reason", "updated_at", *fields.keys()])
    _event(request, event_kind or new_status, actor=actor, message=reason)
    request_transitioned.send(
        sender=DeploymentRequest, request=request, old_status=old_status, new_status=new_status, actor=actor
    )


def _identities(user) -> frozenset[str]:
    return identities_of(user)


def change_authors_known(request: DeploymentRequest) -> bool:
    """Whether the change's authors were determined: a change always has at least one author, so an
    empty list (or a change set that could not be fetched) means nobody knows who wrote it."""
    return bool(request.change_authors) and not (request.change_set or {}).get("error")


def untrusted_checks(request: DeploymentRequest) -> frozenset[str]:
    """Checks whose latest result was reported by a person rather than a CI service account or an
    integration (results recorded before provenance was kept count as untrusted)."""
    provenance = request.check_provenance or {}
    return frozenset(
        name for name in (request.checks or {}) if not (provenance.get(name) or {}).get("service_account")
    )


def _provenance(actor, names: Iterable[str], now: datetime) -> dict[str, dict]:
    by = {
        "by": getattr(actor, "username", "") or "",
        "service_account": bool(getattr(actor, "is_service_account", False)),
        "at": now.isoformat(),
    }
    return {name: by for name in names}


def facts_for(request: DeploymentRequest, approvals: Iterable[Approval] | None = None) -> policy.RequestFacts:
    if approvals is None:
        approvals = request.approvals.all()
    requester = request.requester
    return policy.RequestFacts(
        rules=policy.PolicyRules.from_snapshot(request.policy_snapshot),
        requester=policy.Person(requester.pk, _identities(requester)) if requester else None,
        change_authors=frozenset(a.lower() for a in request.change_authors or ()),
        checks=request.check_states,
        votes=tuple(policy.Vote(a.approver_id, a.decision) for a in approvals),
        is_emergency=request.is_emergency,
        during_freeze=request.during_freeze,
        requester_login=request.requester_login,
        change_authors_known=change_authors_known(request),
        untrusted_checks=untrusted_checks(request),
    )


def verdict_for(request: DeploymentRequest, approvals: Iterable[Approval] | None = None) -> policy.Verdict:
    return policy.evaluate(facts_for(request, approvals))


def environment_in_freeze(environment: Environment, now: datetime) -> FreezeWindow | None:
    return FreezeWindow.objects.filter(environment=environment, starts_at__lte=now, ends_at__gt=now).first()


def _apply_verdict(request: DeploymentRequest, *, actor, now: datetime) -> None:
    """Move an open request to the state its verdict calls for."""
    verdict = verdict_for(request)
    reason = " ".join(verdict.reasons)
    if verdict.outcome == request.status:
        if request.status_reason != reason:
            request.status_reason = reason
            request.save(update_fields=["status_reason", "updated_at"])
        return
    if verdict.outcome == "approved":
        ttl = policy.PolicyRules.from_snapshot(request.policy_snapshot).approval_ttl
        _transition(
            request, RequestStatus.APPROVED, actor=actor, reason=reason, decided_at=now, approval_expires_at=now + ttl
        )
    elif verdict.outcome == "rejected":
        _transition(request, RequestStatus.REJECTED, actor=actor, reason=reason, decided_at=now)
    elif verdict.outcome == "blocked":
        _transition(request, RequestStatus.BLOCKED, actor=actor, reason=reason, decided_at=now)
    elif verdict.outcome == "awaiting_approval":
        _transition(request, RequestStatus.AWAITING_APPROVAL, actor=actor, reason=reason)
    elif verdict.outcome == "pending_checks":
        _transition(request, RequestStatus.PENDING_CHECKS, actor=actor, reason=reason)


def _normalize_checks(checks: Mapping[str, str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, state in (checks or {}).items():
        if not isinstance(name, str) or not name or len(name) > 200:
            raise RuleViolation("invalid_checks", "Check names must be non-empty strings.", status_code=400)
        if state not in CheckState.values:
            raise RuleViolation(
                "invalid_checks",
                f"Check {name!r} has state {state!r}; expected one of {', '.join(CheckState.values)}.",
                status_code=400,
            )
        out[name] = state
    return out


# --- submit -------------------------------------------------------------------------------------


def find_environment(*, actor, service: str, environment: str) -> Environment:
    """The environment ``service/environment`` if ``actor`` may request there; otherwise a 404-style
    refusal that never reveals whether it exists."""
    found = (
        permissions.environments_for(actor, permissions.REQUEST)
        .select_related("service")
        .filter(service__name=service, name=environment)
        .first()
    )
    if found is None:
        violation = RuleViolation(
            "unknown_environment",
            f"No environment {service}/{environment} you may request deployments to.",
            status_code=404,
        )
        record_refusal(actor=actor, action=Action.SUBMIT, violation=violation, environment=None)
        raise violation
    return found


@_records_refusals(Action.SUBMIT)
@transaction.atomic
def submit_request(
    *,
    actor,
    environment: Environment,
    sha: str,
    ref: str,
    source: str = RequestSource.WEB,
    requester=None,
    requester_login: str = "",
    source_url: str = "",
    external_ids: Mapping | None = None,
    title: str = "",
    change_authors: Iterable[str] = (),
    change_set: Mapping | None = None,
    checks: Mapping[str, str] | None = None,
    is_emergency: bool = False,
    justification: str = "",
    ip_address: str | None = None,
    authorized_by_integration: bool = False,
) -> DeploymentRequest:
    """Submit a deployment request.

    1. The actor must be allowed to request here (a person with the engineer role and the
       environment's ``request_deployment`` permission, or a service account with that permission);
       a person named as requester must pass the compliance gates (suspension, training).
       ``authorized_by_integration`` is for requests a CI integration received through its own
       authenticated channel (a signed GitHub App webhook for a configured repository): the actor
       must then be that integration's service account and its per-environment permission is not
       required; the mapped person's compliance gates still apply.
    2. The sha, the ref pattern and any freeze are checked against the environment's policy.
    3. Older open requests for the environment are superseded.
    4. The request stores a snapshot of the policy and starts in the state its checks call for.
    """
    now = timezone.now()
    environment = (
        Environment.objects.select_for_update(no_key=True, of=("self",))
        .select_related("service")
        .get(pk=environment.pk)
    )
    integration = authorized_by_integration and getattr(actor, "is_service_account", False)
    if not integration and not permissions.can_act(actor, permissions.REQUEST, environment):
        raise RuleViolation("not_permitted", f"You may not request deployments to {environment}.", status_code=403)
    if not actor.is_service_account:
        person = actor  # a person requests as themself, whatever login is named
    else:
        # CI names the person it acts for; an unmatched name stays a visible gap (see policy.identity_gaps).
        person = requester if requester is not None else resolve_person(requester_login)
    if person is not None:
        refusal = acting_refusal(user=person, action="request")
        if refusal is not None:
            raise refusal
    approval_policy, _ = ApprovalPolicy.objects.get_or_create(environment=environment)
    rules = policy_rules(approval_policy)
    freeze = environment_in_freeze(environment, now)
    policy.validate_submission(
        sha=sha,
        ref=ref,
        rules=rules,
        is_emergency=is_emergency,
        justification=justification,
        in_freeze=freeze is not None,
    )
    checks = _normalize_checks(checks)
    request = DeploymentRequest.objects.create(
        environment=environment,
        sha=sha,
        ref=ref,
        requester=person,
        requester_login=requester_login or (person.username if person else ""),
        source=source,
        source_url=source_url,
        external_ids=dict(external_ids or {}),
        title=title[:300],
        change_authors=sorted({a for a in change_authors if a}),
        change_set=dict(change_set or {}),
        checks=checks,
        check_provenance=_provenance(actor, checks, now),
        policy_snapshot=rules.snapshot(),
        is_emergency=is_emergency,
        emergency_justification=justification.strip() if is_emergency else "",
        during_freeze=freeze is not None,
        flagged_for_review=is_emergency,
        status=RequestStatus.PENDING_CHECKS,
        expires_at=now + rules.request_ttl,
    )
    _event(
        request,
        EventKind.SUBMITTED,
        actor=actor,
        message=f"Requested {request.short_sha} ({policy.normalize_ref(ref)}) for {environment}.",
        data={"source": source, "freeze": freeze.reason if freeze else None},
    )
    older = (
        DeploymentRequest.objects.select_for_update(no_key=True, of=("self",))
        .filter(environment=environment, status__in=SUPERSEDABLE_STATUSES)
        .exclude(pk=request.pk)
    )
    for old in older:
        _transition(
            old,
            RequestStatus.SUPERSEDED,
            actor=actor,
            reason=f"Superseded by request #{request.pk}.",
            superseded_by=request,
        )
    request_transitioned.send(
        sender=DeploymentRequest, request=request, old_status=None, new_status=request.status, actor=actor
    )
    _apply_verdict(request, actor=actor, now=now)
    return request


def submit_request_by_name(*, actor, service: str, environment: str, **kwargs) -> DeploymentRequest:
    env = find_environment(actor=actor, service=service, environment=environment)
    return submit_request(actor=actor, environment=env, **kwargs)


# --- checks -------------------------------------------------------------------------------------


@_records_refusals(Action.RECORD_CHECKS)
@transaction.atomic
def record_checks(
    *, actor, request: DeploymentRequest, checks: Mapping[str, str], ip_address: str | None = None
) -> DeploymentRequest:
    """Merge check results into an open request and move it on (checks passed → awaiting approval,
    a required check failed → blocked)."""
    request = _lock(request)
    if request.status not in OPEN_STATUSES:
        raise RuleViolation(
            "request_not_open",
            f"Checks can only be recorded on an open request; this one is {request.get_status_display().lower()}.",
        )
    now = timezone.now()
    reported = _normalize_checks(checks)
    request.checks = {**request.checks, **reported}
    request.check_provenance = {**(request.check_provenance or {}), **_provenance(actor, reported, now)}
    request.save(update_fields=["checks", "check_provenance", "updated_at"])
    _event(request, EventKind.CHECKS_RECORDED, actor=actor, data={"checks": dict(checks)})
    _apply_verdict(request, actor=actor, now=now)
    return request


@_records_refusals(Action.RECORD_CHECKS)
@transaction.atomic
def record_change_set(
    *, actor, request: DeploymentRequest, change_set: Mapping, change_authors: Iterable[str] = ()
) -> DeploymentRequest:
    """Keep the change set approvers review (commits, diff stats) and add its authors and committers
    to the request's change authors (never removing any), while the request is open."""
    request = _lock(request)
    if request.status not in OPEN_STATUSES:
        raise RuleViolation(
            "request_not_open",
            f"A change set can only be recorded on an open request; this one is "
            f"{request.get_status_display().lower()}.",
        )
    request.change_set = dict(change_set)
    request.change_authors = sorted({*(request.change_authors or ()), *(a for a in change_authors if a)})
    request.save(update_fields=["change_set", "change_authors", "updated_at"])
    return request


# --- decisions ----------------------------------------------------------------------------------


def _expire_locked(request: DeploymentRequest, *, actor, reason: str) -> None:
    _transition(request, RequestStatus.EXPIRED, actor=actor, reason=reason, finished_at=timezone.now())


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


@_records_refusals(Action.CANCEL)
@transaction.atomic
def cancel_request(
    *, actor, request: DeploymentRequest, reason: str = "", ip_address: str | None = None
) -> DeploymentRequest:
    """The requester (or an administrator) withdraws a request that has not started deploying."""
    locked = _lock(request)
    if not permissions.can_cancel(actor, locked):
        raise RuleViolation(
            "not_permitted", "Only the requester or an administrator may cancel a request.", status_code=403
        )
    if locked.status not in SUPERSEDABLE_STATUSES:
        raise RuleViolation(
            "request_terminal" if locked.is_terminal else "already_deploying",
            f"The request is {locked.get_status_display().lower()}; it can no longer be cancelled.",
        )
    _transition(
        locked, RequestStatus.CANCELLED, actor=actor, reason=reason.strip() or "Cancelled.", finished_at=timezone.now()
    )
    return locked


# --- expiry -------------------------------------------------------------------------------------


def _expire_if_due(pk: int, *, actor, now: datetime | None = None) -> bool:
    now = now or timezone.now()
    with transaction.atomic():
        row = (
            DeploymentRequest.objects.select_for_update(skip_locked=True, no_key=True, of=("self",))
            .select_related("environment")
            .filter(pk=pk)
            .first()
        )
        if row is None:
            return False
        if row.status in OPEN_STATUSES and row.expires_at <= now:
            _expire_locked(row, actor=actor, reason="The request was not decided within its time limit.")
            return True
        if row.status == RequestStatus.APPROVED and row.approval_expires_at and row.approval_expires_at <= now:
            _expire_locked(row, actor=actor, reason="The approval went stale: the deployment did not start in time.")
            return True
    return False


def expire_due_requests(*, actor, now: datetime | None = None) -> int:
    """Expire open requests past their time limit and approvals whose deployment never started.

    Safe to run twice and in parallel: each row is claimed with ``SKIP LOCKED`` and re-checked.
    """
    now = now or timezone.now()
    expired = 0
    due_open = DeploymentRequest.objects.filter(status__in=OPEN_STATUSES, expires_at__lte=now)
    due_approved = DeploymentRequest.objects.filter(status=RequestStatus.APPROVED, approval_expires_at__lte=now)
    for pk in list(due_open.values_list("pk", flat=True)) + list(due_approved.values_list("pk", flat=True)):
        expired += _expire_if_due(pk, actor=actor, now=now)
    return expired


# --- executions ---------------------------------------------------------------------------------

EXECUTION_STARTED = {ExecutionStatus.QUEUED, ExecutionStatus.IN_PROGRESS}
EXECUTION_FINISHED = {
    ExecutionStatus.SUCCESS: RequestStatus.DEPLOYED,
    ExecutionStatus.FAILURE: RequestStatus.FAILED,
    ExecutionStatus.ERROR: RequestStatus.FAILED,
}


@_records_refusals(Action.EXECUTE)
def report_execution(
    *,
    actor,
    environment: Environment,
    sha: str,
    status: str,
    request: DeploymentRequest | None = None,
    external_id: str = "",
    url: str = "",
    ip_address: str | None = None,
    started_at: datetime | None = None,
) -> Execution:
    """Record what the CI actually did and move the authorizing request along.

    An execution is *authorized* when it runs the sha of a request that is approved (and whose
    approval had not gone stale when it started) or already deploying. Anything else is recorded
    with a flag reason for monitoring; it is never silently dropped.

    ``started_at``: when the CI system says the deployment started, for a deployment learned of
    late (reconciliation after a lost webhook); never later than now. Default: now.

    What a CI run is never changes: its first report fixes the sha (and the environment, part of
    its identity); a later report of the same run with another sha is refused (409
    ``execution_conflict``), kept as a refusal and opens a violation. A flagged execution stays
    flagged, whatever is reported later.
    """
    try:
        return _report_execution(
            actor=actor, environment=environment, sha=sha, status=status, request=request,
            external_id=external_id, url=url, started_at=started_at,
        )
    except RuleViolation as violation:
        if violation.code == "execution_conflict":
            # Outside the rolled-back transaction, so the finding survives the refusal.
            execution_conflict_reported.send(
                sender=Execution, execution_id=violation.details["execution_id"], reported_sha=sha, actor=actor,
            )
        raise


@transaction.atomic
def _report_execution(
    *, actor, environment: Environment, sha: str, status: str, request: DeploymentRequest | None,
    external_id: str, url: str, started_at: datetime | None,
) -> Execution:
    if status not in ExecutionStatus.values:
        raise RuleViolation("invalid_status", f"Unknown execution status {status!r}.", status_code=400)
    if not policy.SHA_RE.match(sha or ""):
        raise RuleViolation(
            "invalid_sha", "The deployed sha must be 40 lowercase hexadecimal characters.", status_code=400
        )
    now = timezone.now()
    if started_at is not None:
        now = min(started_at, now)
    if request is None:
        # Link to the request that authorized this sha, if there is one.
        request = (
            DeploymentRequest.objects.filter(
                environment=environment,
                sha=sha,
                status__in=(
                    RequestStatus.APPROVED,
                    RequestStatus.DEPLOYING,
                    RequestStatus.DEPLOYED,
                    RequestStatus.FAILED,
                ),
            )
            .order_by("-created_at")
            .first()
        )
    locked = _lock(request) if request is not None else None
    flag = ""
    if locked is None:
        flag = "No deployment request authorizes this execution."
    elif locked.sha != sha:
        flag = f"Deployed sha {sha[:12]} differs from the approved sha {locked.sha[:12]}."
    elif locked.status == RequestStatus.APPROVED:
        if locked.approval_expires_at and now >= locked.approval_expires_at:
            flag = "The approval had gone stale before the deployment started."
            _expire_locked(locked, actor=actor, reason="The approval went stale: the deployment did not start in time.")
    elif locked.status == RequestStatus.EXPIRED and locked.approval_expires_at and now < locked.approval_expires_at:
        # Approved and started in time, but the start was learned of late (the approval lapsed
        # meanwhile): authorized; the request keeps its final state.
        pass
    elif locked.status not in (RequestStatus.DEPLOYING, RequestStatus.DEPLOYED, RequestStatus.FAILED):
        flag = f"The request is {locked.get_status_display().lower()}, not approved."
    new = {"sha": sha, "status": status, "authorized": not flag, "flag_reason": flag, "url": url,
           "request": locked, "reported_by": actor, "started_at": now}
    if external_id:
        # One CI run, one execution: a report racing another for the same run (its webhook and
        # reconciliation, a redelivery) hits the unique constraint, and get_or_create then locks and
        # updates the row that won.
        execution, created = Execution.objects.select_for_update(no_key=True, of=("self",)).get_or_create(
            environment=environment, external_id=external_id, defaults=new
        )
    else:
        execution, created = Execution.objects.create(environment=environment, **new), True
    if not created:
        if execution.sha != sha:
            raise RuleViolation(
                "execution_conflict",
                f"CI run {external_id} was first reported deploying {execution.sha[:12]}; a report of the same run "
                f"deploying {sha[:12]} is refused (what a run deployed never changes).",
                details={"execution_id": execution.pk, "recorded_sha": execution.sha, "reported_sha": sha},
                status_code=409,
            )
        execution.status = status
        if flag and execution.authorized:
            # A report may reveal a problem; no report ever clears one.
            execution.authorized, execution.flag_reason = False, flag
        execution.url = execution.url or url
        if execution.request_id is None and not execution.flag_reason:
            execution.request = locked
        execution.started_at = execution.started_at or now
        execution.save()
        flag = execution.flag_reason
        if execution.request_id != getattr(locked, "pk", None):
            # The run belongs to the request it was first linked to: move only that one along.
            return _after_report(execution, locked=None, flag=flag, status=status, actor=actor, now=now)
    return _after_report(execution, locked=locked, flag=flag, status=status, actor=actor, now=now)


def _after_report(execution: Execution, *, locked, flag: str, status: str, actor, now: datetime) -> Execution:
    execution_recorded.send(sender=Execution, execution=execution)
    if flag or locked is None:
        return execution
    if locked.status == RequestStatus.APPROVED:
        _transition(
            locked,
            RequestStatus.DEPLOYING,
            actor=actor,
            event_kind=EventKind.DEPLOYING,
            reason=f"Deployment started ({execution.get_status_display().lower()}).",
        )
    if status in EXECUTION_FINISHED and locked.status == RequestStatus.DEPLOYING:
        _transition(
            locked,
            EXECUTION_FINISHED[status],
            actor=actor,
            finished_at=now,
            reason=f"Deployment {execution.get_status_display().lower()}.",
        )
    return execution
