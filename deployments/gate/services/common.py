"""What every gate service shares: refusals kept as evidence, the policy in force, the row lock, timeline
events and transitions, the facts and verdict of a request, and expiry."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from compliance.errors import RuleViolation
from deployments.choices import (
    OPEN_STATUSES,
    TERMINAL_STATUSES,
    Action,
    CheckState,
    EventKind,
    RequestStatus,
    Tier,
    UnverifiedIdentity,
)
from deployments.gate import policy
from deployments.gate.facts import verdict_for
from deployments.models import (
    ApprovalPolicy,
    DeploymentRequest,
    Environment,
    Refusal,
    RequestEvent,
    Service,
)
from deployments.signals import request_transitioned


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


def records_refusals(action: str):
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
        newer_request_withdraws_approvals=approval_policy.newer_request_withdraws_approvals,
        ticket_required=approval_policy.require_ticket,
        ticket_pattern=approval_policy.ticket_pattern or policy.DEFAULT_TICKET_PATTERN,
        ticket_url_template=approval_policy.ticket_url_template,
        risk_level_required=approval_policy.require_risk_level,
        impact_required=approval_policy.require_impact,
        rollback_plan_required=approval_policy.require_rollback_plan,
        step_up_minutes=approval_policy.step_up_minutes,
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


def _provenance(actor, names: Iterable[str], now: datetime) -> dict[str, dict]:
    by = {
        "by": getattr(actor, "username", "") or "",
        "service_account": bool(getattr(actor, "is_service_account", False)),
        "at": now.isoformat(),
    }
    return {name: by for name in names}


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
        if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in name):
            raise RuleViolation(
                "invalid_checks", "Check names must not contain control characters (NUL, newline…).", status_code=400
            )
        if state not in CheckState.values:
            raise RuleViolation(
                "invalid_checks",
                f"Check {name!r} has state {state!r}; expected one of {', '.join(CheckState.values)}.",
                status_code=400,
            )
        out[name] = state
    return out



def _expire_locked(request: DeploymentRequest, *, actor, reason: str) -> None:
    _transition(request, RequestStatus.EXPIRED, actor=actor, reason=reason, finished_at=timezone.now())




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
