"""Executions: what CI actually deployed, judged against the approval at the time it started."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from compliance.errors import RuleViolation
from deployments.choices import (
    AUTHORIZING_STATUSES,
    WITHDRAWING_STATUSES,
    Action,
    EventKind,
    ExecutionStatus,
    RequestStatus,
)
from deployments.gate import policy
from deployments.gate.services.common import (
    _event,
    _expire_locked,
    _lock,
    _transition,
    records_refusals,
)
from deployments.models import (
    DeploymentRequest,
    Environment,
    Execution,
)
from deployments.signals import execution_conflict_reported, execution_recorded

EXECUTION_FINISHED = {
    ExecutionStatus.SUCCESS: RequestStatus.DEPLOYED,
    ExecutionStatus.FAILURE: RequestStatus.FAILED,
    ExecutionStatus.ERROR: RequestStatus.FAILED,
}


def approval_stood_at(request: DeploymentRequest, when: datetime) -> bool:
    """Was ``request`` approved, and its approval not yet withdrawn (lapsed, cancelled, superseded), at ``when``?"""
    if request.approval_expires_at is None:
        return False  # never approved
    if when >= request.approval_expires_at:
        return False
    if request.status in (RequestStatus.CANCELLED, RequestStatus.SUPERSEDED):
        return request.finished_at is not None and when < request.finished_at
    return True


@records_refusals(Action.EXECUTE)
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
    if request is None:
        # Link to the request that authorized this sha, if there is one.
        # Link to the request that authorized this sha, if there is one (an approval withdrawn since
        # may still have stood when the deployment started).
        request = (
            DeploymentRequest.objects.filter(environment=environment, sha=sha)
            .filter(
                Q(status__in=AUTHORIZING_STATUSES)
                | Q(status__in=WITHDRAWING_STATUSES, approval_expires_at__isnull=False)
            )
            .order_by("-created_at")
            .first()
        )
    locked = _lock(request) if request is not None else None
    # The clock is read once the request is locked: a report that waited for the lock (behind an
    # expiry, another report of the run) is judged at the time it is applied, never at a time from
    # before the state it now sees.
    now = timezone.now()
    if started_at is not None:
        now = min(started_at, now)
    flag = ""
    if locked is None:
        flag = "No deployment request authorizes this execution."
    elif locked.sha != sha:
        flag = f"Deployed sha {sha[:12]} differs from the approved sha {locked.sha[:12]}."
    elif locked.status == RequestStatus.APPROVED:
        if locked.approval_expires_at and now >= locked.approval_expires_at:
            flag = "The approval had gone stale before the deployment started."
            _expire_locked(locked, actor=actor, reason="The approval went stale: the deployment did not start in time.")
    elif locked.status in WITHDRAWING_STATUSES and approval_stood_at(locked, now):
        # Approved and started while the approval stood, learned of late (the approval lapsed or
        # was withdrawn meanwhile): authorized; the request keeps its final state.
        pass
    elif locked.status in WITHDRAWING_STATUSES and locked.approval_expires_at:
        flag = f"The approval was withdrawn ({locked.get_status_display().lower()}) before the deployment started."
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
        if locked.status == RequestStatus.DEPLOYED:
            _mark_rollback(locked, actor=actor)
    return execution


def _mark_rollback(deployed: DeploymentRequest, *, actor) -> None:
    """A success that goes back to an earlier version marks the deployment it replaced as *followed by
    a rollback* (DORA's change failure rate): the environment's previous successful deployment has
    another sha, and this sha was deployed successfully there before that one. Recorded here, once,
    so the metrics read a column instead of searching each environment's history (two index lookups:
    ``request_env_finished`` and ``request_env_sha``)."""
    done = DeploymentRequest.objects.filter(environment_id=deployed.environment_id, status=RequestStatus.DEPLOYED,
                                            finished_at__isnull=False).exclude(pk=deployed.pk)
    replaced = (done.filter(finished_at__lte=deployed.finished_at)
                .order_by("-finished_at", "-id").select_for_update(no_key=True, of=("self",)).first())
    if replaced is None or replaced.sha == deployed.sha or replaced.rolled_back_by_id is not None:
        return
    if not done.filter(sha=deployed.sha, finished_at__lt=replaced.finished_at).exists():
        return
    replaced.rolled_back_by = deployed
    replaced.save(update_fields=["rolled_back_by", "updated_at"])
    _event(replaced, EventKind.ROLLED_BACK, actor=actor,
           message=f"Rolled back: #{deployed.pk} went back to {deployed.sha[:12]}, deployed here before.",
           data={"rolled_back_by": deployed.pk})
