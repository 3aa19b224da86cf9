"""Turning recorded events into violations, as they happen and again by reconciliation.

- ``execution_recorded`` (sent by ``services.report_execution``): a deployment in a protected
  environment without an approved request, of another sha, after the approval went stale, during
  a freeze without an emergency approval, or requested by someone whose training has lapsed.
- ``decision_recorded``: a decision by someone who was not eligible at that moment. The services
  refuse such decisions, so this "cannot happen" — it is detected anyway (a bug, a row written
  outside the gate).
- ``reconcile``: a periodic re-scan of the last N days' executions and decisions that opens what
  is missing, so a lost event (a crashed worker, a receiver that failed) is still caught.
- ``missed_event``: executions recorded inside it were found by reconciling with the CI system
  (e.g. ``deployments.integrations.github.reconciliation`` when a GitHub webhook was lost), not reported by their
  event; their violations say so (source "reconciliation", ``evidence["missed_event"]``).
- ``report_unauthorized_push`` / ``report_branch_protection_drift``: hooks for the SCM integrations.

Every violation has a dedup key naming its event, so the event path and reconciliation never open
two violations for the same thing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime

from auditlog.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.db.models import Q
from django.dispatch import receiver
from django.utils import timezone

from compliance.models import Severity, Suspension, Violation, ViolationKind
from compliance.people.gates import acting_refusal
from compliance.violations.services import open_violation
from deployments.choices import Decision, EventKind, Tier
from deployments.gate import eligibility, permissions
from deployments.models import (
    Approval,
    EnvironmentGroupObjectPermission,
    EnvironmentUserObjectPermission,
    Execution,
    FreezeWindow,
    RequestEvent,
    Service,
)
from deployments.signals import decision_recorded, execution_conflict_reported, execution_recorded
from portal.links import absolute_url

logger = logging.getLogger(__name__)


@dataclass
class Finding:
    """One violation a detector wants open: what, how bad, the evidence and a stable dedup key."""

    kind: str
    severity: str
    title: str
    dedup_key: str
    subject: str = ""
    evidence: dict = field(default_factory=dict)
    links: list[dict] = field(default_factory=list)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _severity(environment, *, production: str, other: str) -> str:
    return production if environment.tier == Tier.PRODUCTION else other


def open_findings(findings: list[Finding], *, source: str) -> list[Violation]:
    return [
        open_violation(
            kind=f.kind, severity=f.severity, title=f.title, evidence=f.evidence, dedup_key=f.dedup_key,
            evidence_links=f.links, subject=f.subject, source=source,
        )
        for f in findings
    ]


# --- executions ---------------------------------------------------------------------------------


def _execution_evidence(execution: Execution, freeze: FreezeWindow | None) -> dict:
    request = execution.request
    return {
        "environment": str(execution.environment),
        "tier": execution.environment.tier,
        "execution": {
            "id": execution.pk,
            "sha": execution.sha,
            "status": execution.status,
            "external_id": execution.external_id,
            "url": execution.url,
            "reported_by": execution.reported_by.username if execution.reported_by else None,
            "started_at": _iso(execution.started_at or execution.created_at),
            "recorded_at": _iso(execution.created_at),
            "authorized": execution.authorized,
            "flag_reason": execution.flag_reason,
        },
        "request": None if request is None else {
            "id": request.pk,
            "sha": request.sha,
            "ref": request.ref,
            "status": request.status,
            "requester": request.requester.username if request.requester else request.requester_login,
            "decided_at": _iso(request.decided_at),
            "approval_expires_at": _iso(request.approval_expires_at),
            "is_emergency": request.is_emergency,
            "approvers": [a.approver.username for a in request.approvals.all() if a.decision == Decision.APPROVE],
        },
        "freeze": None if freeze is None else {
            "id": freeze.pk, "starts_at": _iso(freeze.starts_at), "ends_at": _iso(freeze.ends_at),
            "reason": freeze.reason,
        },
    }


def _execution_links(execution: Execution) -> list[dict]:
    links = []
    if execution.url:
        links.append({"label": "CI run", "url": execution.url})
    if execution.request_id:
        links.append({
            "label": f"Request #{execution.request_id}",
            "url": absolute_url("deployments:request_detail", execution.request_id),
        })
    links.append({
        "label": f"Execution #{execution.pk}",
        "url": absolute_url("admin:deployments_execution_change", execution.pk),
    })
    return links


def execution_findings(execution: Execution, *, live: bool) -> list[Finding]:
    """What is wrong with one deployment. ``live``: called at the time of the event, so checks of a
    person's current standing (training) apply to that moment."""
    environment = execution.environment
    if not environment.is_protected:
        return []
    at = execution.started_at or execution.created_at
    request = execution.request
    freeze = FreezeWindow.objects.filter(environment=environment, starts_at__lte=at, ends_at__gt=at).first()
    event = execution.external_id or f"sha-{execution.sha}"
    key = f"execution:{environment.pk}:{event}"
    evidence = _execution_evidence(execution, freeze)
    links = _execution_links(execution)
    subject = str(environment)
    short = execution.sha[:12]

    def finding(kind: str, severity: str, title: str) -> Finding:
        return Finding(kind, severity, title, f"{key}:{kind}", subject, evidence, links)

    found: list[Finding] = []
    if execution.flag_reason:
        critical_or_high = _severity(environment, production=Severity.CRITICAL, other=Severity.HIGH)
        if request is None:
            found.append(finding(
                ViolationKind.UNAUTHORIZED_DEPLOYMENT, critical_or_high,
                f"{short} deployed to {subject} without an approved request",
            ))
        elif request.sha != execution.sha:
            found.append(finding(
                ViolationKind.SHA_MISMATCH, critical_or_high,
                f"{short} deployed to {subject}, but request #{request.pk} approved {request.sha[:12]}",
            ))
        elif request.approval_expires_at and at >= request.approval_expires_at:
            found.append(finding(
                ViolationKind.STALE_APPROVAL, _severity(environment, production=Severity.HIGH, other=Severity.MEDIUM),
                f"{short} deployed to {subject} after the approval of request #{request.pk} expired",
            ))
        else:
            found.append(finding(
                ViolationKind.UNAUTHORIZED_DEPLOYMENT, critical_or_high,
                f"{short} deployed to {subject}; request #{request.pk} is {request.get_status_display().lower()}",
            ))
    elif freeze is not None and (request is None or not request.is_emergency):
        found.append(finding(
            ViolationKind.FREEZE_BREACH, _severity(environment, production=Severity.HIGH, other=Severity.MEDIUM),
            f"{short} deployed to {subject} during a freeze ({freeze.reason}) without an emergency approval",
        ))
    if live and request is not None and request.requester is not None:
        refusal = acting_refusal(user=request.requester, action="request")
        if refusal is not None and refusal.code != "suspended":
            lapsed = finding(
                ViolationKind.LAPSED_TRAINING, _severity(environment, production=Severity.HIGH, other=Severity.MEDIUM),
                f"{request.requester.username} is not in good standing ({refusal.code}) "
                f"but their deployment of {short} to {subject} ran",
            )
            lapsed.evidence = {**evidence, "person": request.requester.username,
                               "refusal": {"code": refusal.code, "message": refusal.message}}
            found.append(lapsed)
    return found


@dataclass
class MissedEvent:
    """A deployment the portal learned of by reconciling with the CI system, not from its event."""

    evidence: dict
    violations: list[Violation] = field(default_factory=list)


_missed_event: ContextVar[MissedEvent | None] = ContextVar("deployments_detection_missed_event", default=None)


@contextmanager
def missed_event(evidence: dict) -> Iterator[MissedEvent]:
    """Executions recorded inside this block were caught by reconciliation: the violations they open
    get source "reconciliation" and ``evidence["missed_event"]``, and are collected on the result."""
    caught = MissedEvent(evidence)
    token = _missed_event.set(caught)
    try:
        yield caught
    finally:
        _missed_event.reset(token)


@receiver(execution_recorded, dispatch_uid="deployments.detection.execution")
def _on_execution_recorded(sender, execution: Execution, **kwargs) -> None:
    # Inside report_execution's transaction: the violation commits with the execution. A failure
    # here must not lose the execution; reconciliation opens what was missed.
    missed = _missed_event.get()
    try:
        with transaction.atomic():
            findings = execution_findings(execution, live=True)
            if missed is None:
                open_findings(findings, source="event")
                return
            for finding in findings:
                finding.evidence = {**finding.evidence, "missed_event": missed.evidence}
            missed.violations.extend(open_findings(findings, source="reconciliation"))
    except Exception:
        logger.exception("Violation detection failed for execution #%s; reconciliation will retry.", execution.pk)


@receiver(execution_conflict_reported, dispatch_uid="deployments.detection.findings.execution_conflict")
def _on_execution_conflict(sender, execution_id: int, reported_sha: str, actor=None, **kwargs) -> None:
    """A CI run was re-reported with another sha: someone (or something) tried to rewrite what a
    deployment was. The refusal is kept by the service; this opens the violation to investigate."""
    execution = Execution.objects.select_related("environment__service", "request", "reported_by").get(
        pk=execution_id
    )
    environment = execution.environment
    evidence = {
        **_execution_evidence(execution, None),
        "conflicting_report": {
            "sha": reported_sha,
            "reported_by": getattr(actor, "username", None),
            "at": _iso(timezone.now()),
        },
    }
    open_violation(
        kind=ViolationKind.EXECUTION_CONFLICT,
        severity=_severity(environment, production=Severity.CRITICAL, other=Severity.HIGH),
        title=f"CI run {execution.external_id} of {environment} re-reported with {reported_sha[:12]} "
        f"(recorded {execution.sha[:12]})",
        evidence=evidence,
        dedup_key=f"execution-conflict:{execution.pk}:{reported_sha}",
        evidence_links=_execution_links(execution),
        subject=str(environment),
    )


# --- decisions ----------------------------------------------------------------------------------


def _suspended_at(user, at: datetime) -> Suspension | None:
    return (
        Suspension.objects.filter(user=user, scope__in=["all", "approve"], started_at__lte=at)
        .filter(Q(lifted_at__isnull=True) | Q(lifted_at__gt=at))
        .first()
    )


def _lacked_approve_permission(approval: Approval) -> bool:
    """True when the approver cannot approve there now and the audit log shows no change to any
    permission grant or group membership since the decision: so they could not approve then either.
    (After an access change, today's state says nothing about that moment: no conclusion.)"""
    if permissions.can_act(approval.approver, permissions.APPROVE, approval.request.environment):
        return False
    access_models = ContentType.objects.get_for_models(
        EnvironmentUserObjectPermission, EnvironmentGroupObjectPermission, get_user_model(), Group
    ).values()
    return not LogEntry.objects.filter(
        content_type__in=list(access_models), timestamp__gt=approval.created_at
    ).exists()


def approval_findings(approval: Approval, *, live: bool) -> list[Finding]:
    """Re-evaluate a decision: would ``eligibility`` have refused it when it was made?

    Always: what the records still tell (``eligibility`` after the fact: separation of duties and
    identity gaps for this decision, the request's expiry, a freeze, one decision each), service
    accounts, a suspension in force at that time, and the decision's timeline event (a decision
    without one was written outside the gate). ``live`` (at decision time) asks every rule as it
    stands at that moment (the request's state, role + permission, the compliance gates: a lapsed
    training is its own finding); afterwards, a missing permission counts only when the audit log
    shows no access change since.
    """
    request = approval.request
    approver = approval.approver
    environment = request.environment
    others = [a for a in request.approvals.all() if a.pk != approval.pk]
    reasons: list[str] = []
    lapsed = None
    for rule, refusal in eligibility.decision_refusals(
        user=approver, request=request, decision=approval.decision, now=approval.created_at, approvals=others,
        live=live,
    ):
        if rule == eligibility.PERMISSION:
            reasons.append(f"The approver did not hold the approver role and approval permission for {environment}.")
        elif rule == eligibility.COMPLIANCE:
            if refusal.code != "suspended":  # a suspension is judged at that time, below
                lapsed = refusal
        else:
            reasons.append(refusal.message)
    if approver.is_service_account:
        reasons.append("A service account recorded a decision; service accounts can never approve.")
    suspension = _suspended_at(approver, approval.created_at)
    if suspension is not None:
        reasons.append(f"The approver was suspended at the time (suspension #{suspension.pk}).")
    kind = EventKind.APPROVAL if approval.decision == Decision.APPROVE else EventKind.REJECTION
    if not RequestEvent.objects.filter(request=request, kind=kind, data__approval_id=approval.pk).exists():
        reasons.append("The decision has no timeline event: it was recorded outside the portal's services.")
    if not live and _lacked_approve_permission(approval):
        reasons.append(
            f"The approver did not hold the approver role and approval permission for {environment}, and the "
            "audit log shows no access change since the decision."
        )
    key = f"approval:{approval.pk}"
    evidence = {
        "approval": {
            "id": approval.pk, "decision": approval.decision, "approver": approver.username,
            "decided_at": _iso(approval.created_at), "comment": approval.comment,
            "policy_version": approval.policy_version, "ip_address": approval.ip_address,
        },
        "request": {
            "id": request.pk, "environment": str(environment), "sha": request.sha,
            "requester": request.requester.username if request.requester else request.requester_login,
            "change_authors": request.change_authors,
        },
    }
    links = [
        {"label": f"Request #{request.pk}", "url": absolute_url("deployments:request_detail", request.pk)},
        {"label": f"Approval #{approval.pk}", "url": absolute_url("admin:deployments_approval_change", approval.pk)},
    ]
    found = []
    if reasons:
        found.append(Finding(
            ViolationKind.INELIGIBLE_DECISION, Severity.CRITICAL,
            f"{approval.get_decision_display()} of request #{request.pk} by ineligible {approver.username}",
            f"{key}:{ViolationKind.INELIGIBLE_DECISION}", str(environment), {**evidence, "reasons": reasons}, links,
        ))
    if lapsed is not None:
        found.append(Finding(
            ViolationKind.LAPSED_TRAINING, Severity.HIGH,
            f"{approver.username} decided on request #{request.pk} while not in good standing ({lapsed.code})",
            f"{key}:{ViolationKind.LAPSED_TRAINING}", str(environment),
            {**evidence, "refusal": {"code": lapsed.code, "message": lapsed.message}}, links,
        ))
    return found


@receiver(decision_recorded, dispatch_uid="deployments.detection.findings.decision")
def _on_decision_recorded(sender, approval: Approval, **kwargs) -> None:
    try:
        with transaction.atomic():
            open_findings(approval_findings(approval, live=True), source="event")
    except Exception:
        logger.exception("Violation detection failed for approval #%s; reconciliation will retry.", approval.pk)


# --- hooks for the SCM integrations -------------------------------------------------------------


def _service_for(repository: str) -> Service | None:
    return Service.objects.filter(repository__iexact=repository).first()


def report_unauthorized_push(
    *,
    repository: str,
    branch: str,
    sha: str,
    pusher_login: str,
    url: str = "",
    occurred_at: datetime | None = None,
    details: dict | None = None,
    source: str = "github",
) -> Violation:
    """A push to a protected branch by someone not authorized to push there (one violation per sha)."""
    service = _service_for(repository)
    evidence = {
        "repository": repository, "branch": branch, "sha": sha, "pusher": pusher_login,
        "service": service.name if service else None, "occurred_at": _iso(occurred_at), **(details or {}),
    }
    return open_violation(
        kind=ViolationKind.UNAUTHORIZED_PUSH, severity=Severity.HIGH,
        title=f"{pusher_login} pushed {sha[:12]} to protected {repository}:{branch}",
        evidence=evidence, dedup_key=f"push:{repository.lower()}:{branch}:{sha}",
        evidence_links=[{"label": "Commit", "url": url}] if url else [],
        subject=repository, source=source, detected_at=None,
    )


def report_branch_protection_drift(
    *,
    repository: str,
    branch: str,
    expected: dict,
    actual: dict,
    url: str = "",
    source: str = "github",
) -> Violation:
    """A protected branch whose protection differs from what the policy requires (one violation per
    distinct drifted state, so a fix and a new drift open a new one)."""
    state = hashlib.sha256(json.dumps(actual, sort_keys=True, default=str).encode()).hexdigest()[:16]
    differences = sorted(k for k in set(expected) | set(actual) if expected.get(k) != actual.get(k))
    return open_violation(
        kind=ViolationKind.BRANCH_PROTECTION_DRIFT,
        severity=Severity.HIGH if not actual else Severity.MEDIUM,
        title=f"Branch protection of {repository}:{branch} drifted ({', '.join(differences) or 'removed'})",
        evidence={"repository": repository, "branch": branch, "expected": expected, "actual": actual,
                  "differences": differences},
        dedup_key=f"drift:{repository.lower()}:{branch}:{state}",
        evidence_links=[{"label": "Branch settings", "url": url}] if url else [],
        subject=repository, source=source,
    )
