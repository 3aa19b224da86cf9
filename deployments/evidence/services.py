"""Writes of the evidence package: emergency reviews, the periodic check for missed ones, and samples.

Refusals are kept as evidence (``records_refusals``) like every other refused action of the gate.
"""

from __future__ import annotations

import hashlib
import random
import secrets
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from compliance.errors import RuleViolation
from compliance.people.gates import acting_refusal
from compliance.people.roles import administers, oversees_everything
from compliance.reports.registry import Filters
from compliance.violations.models import Severity, ViolationKind
from compliance.violations.services import open_violation
from deployments.choices import (
    AUTHORIZING_STATUSES,
    Action,
    EmergencyReviewOutcome,
    EventKind,
    ExecutionStatus,
    RequestStatus,
    Tier,
)
from deployments.gate import permissions
from deployments.gate.services.common import _event, _lock, record_refusal, records_refusals
from deployments.models import DeploymentRequest, EmergencyReview, EvidenceSample, Execution, FailedChangeFlag
from portal.links import absolute_url

MIN_REVIEW_NOTES = 10
MAX_SEED_LENGTH = 64
MIN_FLAG_REASON = 10


def review_hours() -> int:
    return settings.PORTAL_EMERGENCY_REVIEW_HOURS


def review_due_at(request: DeploymentRequest) -> datetime | None:
    """``PORTAL_EMERGENCY_REVIEW_HOURS`` after the emergency change was approved (None if it never was)."""
    if not request.is_emergency or request.decided_at is None or request.approval_expires_at is None:
        return None
    return request.decided_at + timedelta(hours=review_hours())


def emergency_changes():
    """Emergency requests that were approved (whatever became of them since): what needs a review."""
    return DeploymentRequest.objects.filter(is_emergency=True, approval_expires_at__isnull=False)


def review_refusal(*, user, request: DeploymentRequest) -> RuleViolation | None:
    """Why ``user`` may not review this emergency change now, or None: it must be an approved
    emergency change not yet reviewed, and the reviewer an approver of its environment (role, permission,
    current training, not suspended) who neither requested it nor decided on it."""
    if not request.is_emergency or request.approval_expires_at is None:
        return RuleViolation("not_emergency_change", "Only approved emergency changes are reviewed after the fact.")
    if EmergencyReview.objects.filter(request=request).exists():
        return RuleViolation("already_reviewed", "This emergency change has already been reviewed.")
    if not permissions.can_act(user, permissions.APPROVE, request.environment):
        return RuleViolation(
            "not_permitted", f"Only deployment approvers of {request.environment} review its emergency changes.",
            status_code=403,
        )
    if request.requester_id == user.pk:
        return RuleViolation("self_review", "The requester of an emergency change may not review it.", status_code=403)
    if request.approvals.filter(approver=user).exists():
        return RuleViolation(
            "reviewer_decided",
            "An emergency change is reviewed by an approver who did not decide on it; you did.",
            status_code=403,
        )
    return acting_refusal(user=user, action="approve")


@records_refusals(Action.REVIEW_EMERGENCY)
@transaction.atomic
def review_emergency_change(
    *, actor, request: DeploymentRequest, outcome: str, notes: str, ip_address: str | None = None
) -> EmergencyReview:
    """Record the after-the-fact review of an emergency change (once, under the request's row lock)."""
    locked = _lock(request)
    refusal = review_refusal(user=actor, request=locked)
    if refusal is not None:
        raise refusal
    if outcome not in EmergencyReviewOutcome.values:
        raise RuleViolation(
            "invalid_outcome", f"Outcome must be one of {', '.join(EmergencyReviewOutcome.values)}.", status_code=400
        )
    notes = (notes or "").strip()
    if len(notes) < MIN_REVIEW_NOTES:
        raise RuleViolation(
            "notes_required", f"A review needs notes of at least {MIN_REVIEW_NOTES} characters.", status_code=400
        )
    try:
        with transaction.atomic():
            return EmergencyReview.objects.create(
                request=locked, reviewer=actor, outcome=outcome, notes=notes, due_at=review_due_at(locked),
                ip_address=ip_address,
            )
    except IntegrityError as exc:
        raise RuleViolation("already_reviewed", "This emergency change has already been reviewed.") from exc


def open_missed_review_violations(*, now: datetime | None = None) -> int:
    """Open a violation for every emergency change whose review is overdue; returns how many were new.

    Safe to run twice and in parallel: each violation's dedup key names the request, so a second run
    (or a second worker) finds the one already opened. A review recorded late does not close the
    violation; an administrator handles it like any other.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(hours=review_hours())
    overdue = (
        emergency_changes()
        .filter(decided_at__lte=cutoff, emergency_review__isnull=True)
        .select_related("environment__service", "requester")
        .order_by("pk")
    )
    opened = 0
    for request in overdue.iterator(chunk_size=500):
        due = review_due_at(request)
        violation = open_violation(
            kind=ViolationKind.EMERGENCY_REVIEW_MISSED,
            severity=Severity.HIGH if request.environment.tier == Tier.PRODUCTION else Severity.MEDIUM,
            title=f"Emergency change #{request.pk} to {request.environment} was not reviewed within "
                  f"{review_hours()} hours",
            subject=str(request.environment),
            evidence={
                "request": {
                    "id": request.pk, "environment": str(request.environment), "sha": request.sha,
                    "requester": request.requester.username if request.requester else request.requester_login,
                    "approved_at": request.decided_at.isoformat(), "justification": request.emergency_justification,
                },
                "review_due_at": due.isoformat() if due else None,
                "review_hours": review_hours(),
            },
            evidence_links=[{"label": f"Request #{request.pk}",
                             "url": absolute_url("deployments:request_detail", request.pk)}],
            dedup_key=f"emergency-review-missed:{request.pk}",
            source="emergency-review",
            detected_at=now,
        )
        opened += int(violation.created)
    return opened


# --- failed changes ---------------------------------------------------------------------------------


def flag_refusal(*, user, execution: Execution) -> RuleViolation | None:
    """Why ``user`` may not flag this execution as a failed change, or None: it must be a successful
    deployment of a request (a failed one already counts as a failure), and the flagger an
    administrator or a deployment approver of its environment."""
    if not (administers(user) or permissions.can_act(user, permissions.APPROVE, execution.environment)):
        return RuleViolation(
            "not_permitted",
            f"Only administrators and deployment approvers of {execution.environment} flag its failed changes.",
            status_code=403,
        )
    if execution.status != ExecutionStatus.SUCCESS or execution.request_id is None:
        return RuleViolation(
            "not_a_deployment",
            "Only a successful deployment of a request is flagged as a failed change (a failed one already counts).",
            status_code=400,
        )
    return None


def flag_failed_change(*, actor, execution: Execution, reason: str, ip_address: str | None = None) -> FailedChangeFlag:
    """Record that a deployment was traced to an incident (a failed change, DORA's change failure rate).

    Append-only: a flag is never withdrawn; each further incident traced to the deployment is one more
    flag. The first sets ``failed_change_at`` on the request, which the metrics count once.
    """
    return _flag_failed_change(actor=actor, execution=execution, request=execution.request,
                               environment=execution.environment, reason=reason, ip_address=ip_address)


@records_refusals(Action.FLAG_FAILED_CHANGE)
@transaction.atomic
def _flag_failed_change(*, actor, execution: Execution, request, environment, reason: str,
                        ip_address: str | None) -> FailedChangeFlag:
    refusal = flag_refusal(user=actor, execution=execution)
    if refusal is not None:
        raise refusal
    reason = (reason or "").strip()
    if len(reason) < MIN_FLAG_REASON:
        raise RuleViolation(
            "reason_required", f"Say which incident: a reason of at least {MIN_FLAG_REASON} characters.",
            status_code=400,
        )
    locked = _lock(request)
    if locked.status != RequestStatus.DEPLOYED:
        raise RuleViolation(
            "not_a_deployment", f"The request is {locked.get_status_display().lower()}, not deployed.",
            status_code=400,
        )
    flag = FailedChangeFlag.objects.create(
        execution=execution, request=locked, flagged_by=actor, reason=reason, ip_address=ip_address)
    if locked.failed_change_at is None:
        locked.failed_change_at = flag.created_at
        locked.save(update_fields=["failed_change_at", "updated_at"])
    _event(locked, EventKind.FAILED_CHANGE, actor=actor, message=reason, data={"flag_id": flag.pk})
    return flag


# --- samples --------------------------------------------------------------------------------------


def sample_population(*, date_from: date, date_to: date, service: str = "", environment: str = "",
                      emergency_only: bool = False) -> list[int]:
    """Ids of the authorized changes (approved, deploying, deployed, failed) created in the period."""
    filters = Filters(date_from=date_from, date_to=date_to)
    queryset = filters.in_period(DeploymentRequest.objects.filter(status__in=AUTHORIZING_STATUSES))
    if service:
        queryset = queryset.filter(environment__service__name=service)
    if environment:
        queryset = queryset.filter(environment__name=environment)
    if emergency_only:
        queryset = queryset.filter(is_emergency=True)
    return list(queryset.order_by("pk").values_list("pk", flat=True))


def population_fingerprint(ids: list[int]) -> str:
    return hashlib.sha256(",".join(str(pk) for pk in ids).encode()).hexdigest()


def pick(ids: list[int], size: int, seed: str) -> list[int]:
    """The sample: ``random.Random(seed).sample`` over the population in id order, listed in id order."""
    return sorted(random.Random(seed).sample(ids, min(size, len(ids))))  # noqa: S311 (reproducible, not secret)


def _sample_refusal(*, actor, date_from, date_to, size, seed) -> RuleViolation | None:
    if not oversees_everything(actor):
        return RuleViolation("not_permitted", "Only auditors and administrators draw evidence samples.",
                             status_code=403)
    if date_from is None or date_to is None or date_to < date_from:
        return RuleViolation("invalid_period", "Give a period whose end is on or after its start.", status_code=400)
    limit = settings.PORTAL_EVIDENCE_SAMPLE_MAX
    if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= limit:
        return RuleViolation("invalid_size", f"A sample has 1 to {limit} changes.", status_code=400)
    if seed is not None and (not seed or len(seed) > MAX_SEED_LENGTH or not seed.isprintable() or seed != seed.strip()):
        return RuleViolation("invalid_seed", f"A seed is 1 to {MAX_SEED_LENGTH} printable characters.",
                             status_code=400)
    return None


def draw_sample(
    *, actor, date_from: date, date_to: date, size: int, service: str = "", environment: str = "",
    emergency_only: bool = False, seed: str | None = None, ip_address: str | None = None,
) -> EvidenceSample:
    """Draw ``size`` changes at random from the period (a fresh random seed unless one is given to
    reproduce an earlier sample) and keep the sample with its seed and population fingerprint."""
    refusal = _sample_refusal(actor=actor, date_from=date_from, date_to=date_to, size=size, seed=seed)
    if refusal is not None:
        record_refusal(actor=actor, action=Action.DRAW_SAMPLE, violation=refusal, ip_address=ip_address)
        raise refusal
    seed = seed or secrets.token_hex(16)
    with transaction.atomic():
        ids = sample_population(date_from=date_from, date_to=date_to, service=service, environment=environment,
                                emergency_only=emergency_only)
        return EvidenceSample.objects.create(
            drawn_by=actor, date_from=date_from, date_to=date_to, service=service, environment=environment,
            emergency_only=emergency_only, size=size, seed=seed, population_count=len(ids),
            population_sha256=population_fingerprint(ids), request_ids=pick(ids, size, seed),
        )
