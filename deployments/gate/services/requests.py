"""Requests: submitted (by a person or for one by CI), their checks and change set, cancelled, expired."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from compliance.errors import RuleViolation
from compliance.people.gates import acting_refusal
from compliance.people.identity import resolve_person
from deployments.choices import (
    CANCELLABLE_STATUSES,
    OPEN_STATUSES,
    SUPERSEDABLE_STATUSES,
    Action,
    EventKind,
    RequestSource,
    RequestStatus,
)
from deployments.gate import permissions, policy
from deployments.gate.facts import environment_in_freeze
from deployments.gate.services.common import (
    _apply_verdict,
    _event,
    _expire_if_due,
    _lock,
    _normalize_checks,
    _provenance,
    _transition,
    policy_rules,
    record_refusal,
    records_refusals,
)
from deployments.models import (
    ApprovalPolicy,
    DeploymentRequest,
    Environment,
)
from deployments.signals import request_transitioned

# --- submit -------------------------------------------------------------------------------------


def first_commit_at(change_set: Mapping | None) -> datetime | None:
    """The change set's ``first_commit_at`` (ISO 8601 with an offset, as the integrations record it),
    or None when absent or malformed (CI data is untrusted: it never fails a request)."""
    value = (change_set or {}).get("first_commit_at") if isinstance(change_set, Mapping) else None
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


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


@records_refusals(Action.SUBMIT)
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
    ticket: str = "",
    risk_level: str = "",
    impact: str = "",
    rollback_plan: str = "",
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
    2. The sha, the ref pattern and any freeze are checked against the environment's policy, and the
       change record (ticket, risk level, impact, rollback plan) against what the policy requires.
    3. Older undecided requests for the environment are superseded; older approved ones (not yet
       deploying) too when the policy says a newer request withdraws older approvals — their
       approval is then withdrawn (``deployments.delivery.outbox``).
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
    record = policy.ChangeRecord(
        ticket=(ticket or "").strip(), risk_level=(risk_level or "").strip(), impact=(impact or "").strip(),
        rollback_plan=(rollback_plan or "").strip(),
    )
    policy.validate_change_record(record, rules)
    checks = _normalize_checks(checks)
    request = DeploymentRequest.objects.create(
        environment=environment,
        sha=sha,
        ref=ref,
        requester=person,
        requester_login=requester_login or (person.username if person else ""),
        source=source,
        source_url=source_url,
        ip_address=ip_address,
        external_ids=dict(external_ids or {}),
        title=title[:300],
        change_authors=sorted({a for a in change_authors if a}),
        change_set=dict(change_set or {}),
        first_commit_at=first_commit_at(change_set),
        checks=checks,
        check_provenance=_provenance(actor, checks, now),
        policy_snapshot=rules.snapshot(),
        ticket=record.ticket,
        risk_level=record.risk_level,
        impact=record.impact,
        rollback_plan=record.rollback_plan,
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
    supersedable = (
        (*SUPERSEDABLE_STATUSES, RequestStatus.APPROVED)
        if rules.newer_request_withdraws_approvals
        else SUPERSEDABLE_STATUSES
    )
    older = (
        DeploymentRequest.objects.select_for_update(no_key=True, of=("self",))
        .filter(environment=environment, status__in=supersedable)
        .exclude(pk=request.pk)
        .order_by("pk")
    )
    for old in older:
        withdrawn = " Its approval is withdrawn." if old.status == RequestStatus.APPROVED else ""
        _transition(
            old,
            RequestStatus.SUPERSEDED,
            actor=actor,
            reason=f"Superseded by request #{request.pk}.{withdrawn}",
            superseded_by=request,
            finished_at=now,
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


@records_refusals(Action.RECORD_CHECKS)
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


@records_refusals(Action.RECORD_CHECKS)
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
    request.first_commit_at = first_commit_at(change_set)
    request.change_authors = sorted({*(request.change_authors or ()), *(a for a in change_authors if a)})
    request.save(update_fields=["change_set", "first_commit_at", "change_authors", "updated_at"])
    return request



@records_refusals(Action.CANCEL)
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
    if locked.status not in CANCELLABLE_STATUSES:
        raise RuleViolation(
            "request_terminal" if locked.is_terminal else "already_deploying",
            f"The request is {locked.get_status_display().lower()}; it can no longer be cancelled.",
        )
    _transition(
        locked, RequestStatus.CANCELLED, actor=actor, reason=reason.strip() or "Cancelled.", finished_at=timezone.now()
    )
    return locked


# --- expiry -------------------------------------------------------------------------------------



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
