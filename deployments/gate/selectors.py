"""Reads for views and the API; each applies the permission layer first."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db.models import Prefetch, Q, QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone

from deployments.choices import OPEN_STATUSES, Decision, RequestStatus
from deployments.gate import eligibility, permissions
from deployments.models import Approval, DeploymentRequest, RequestEvent

_APPROVALS = Prefetch("approvals", queryset=Approval.objects.only("id", "request_id", "approver_id", "decision"))


def request_for(*, user, pk: int) -> DeploymentRequest:
    """One request ``user`` may see, with what its page needs; 404 otherwise."""
    queryset = permissions.visible_requests(user).select_related(
        "environment__service", "requester", "superseded_by"
    ).prefetch_related(
        Prefetch("approvals", queryset=Approval.objects.select_related("approver")),
        Prefetch("events", queryset=RequestEvent.objects.select_related("actor")),
    )
    return get_object_or_404(queryset, pk=pk)


def requests_awaiting(*, user, statuses=(RequestStatus.AWAITING_APPROVAL,)) -> QuerySet[DeploymentRequest]:
    """Requests ``user`` may decide on (approve or reject, ``eligibility``), oldest first (``statuses``
    widens it to open requests still waiting for checks: listed for who may decide once they pass).
    Approvals are prefetched so the policy progress costs no extra query.

    The cheap rules narrow the query (permission, requester, own decision, expiry); the rest
    (change authors, identities named by CI, identity gaps, a freeze) is asked of ``eligibility`` row
    by row over the open candidates, with the person's standing gathered
    once: a fixed number of queries. Open requests expire (the policy's request time limit), so the
    candidates are the environment's current work, not its history."""
    now = timezone.now()
    standing = eligibility.standing_of(user, now=now, with_freezes=True)
    if standing.gate_refusal is not None or not standing.approve_environment_ids:
        return DeploymentRequest.objects.none()
    candidates = _candidates(user, standing, statuses, now)
    refused = [
        row.pk
        for row in candidates.select_related("environment", "requester").prefetch_related(_APPROVALS)
        if not eligibility.may_decide(user=user, request=row, now=now, approvals=row.approvals.all(),
                                      standing=standing, checks_pending_ok=True)
    ]
    return (
        candidates.exclude(pk__in=refused)
        .select_related("environment__service", "requester")
        .prefetch_related(_APPROVALS)
        .order_by("created_at", "id")
    )


def _candidates(user, standing, statuses, now) -> QuerySet[DeploymentRequest]:
    """Open requests in environments ``user`` approves, not their own and not yet decided by them."""
    return (
        DeploymentRequest.objects.filter(
            environment_id__in=standing.approve_environment_ids, status__in=list(statuses), expires_at__gt=now
        )
        .exclude(requester=user)
        .exclude(approvals__approver=user)
    )


def next_request_awaiting(*, user, exclude_pk: int) -> DeploymentRequest | None:
    """The oldest request (other than ``exclude_pk``) awaiting ``user``'s decision — the queue's first
    row, found without judging the whole queue: candidates are asked of ``eligibility`` in order, a
    few at a time, until one may be decided."""
    now = timezone.now()
    standing = eligibility.standing_of(user, now=now, with_freezes=True)
    if standing.gate_refusal is not None or not standing.approve_environment_ids:
        return None
    candidates = (
        _candidates(user, standing, (RequestStatus.AWAITING_APPROVAL,), now)
        .exclude(pk=exclude_pk)
        .select_related("environment__service", "requester")
        .prefetch_related(_APPROVALS)
        .order_by("created_at", "id")
    )
    start, batch = 0, 10
    while True:
        rows = list(candidates[start:start + batch])
        for row in rows:
            if eligibility.may_decide(user=user, request=row, now=now, approvals=row.approvals.all(),
                                      standing=standing, checks_pending_ok=True):
                return row
        if len(rows) < batch:
            return None
        start += batch


def requests_not_yours_to_decide(*, user, limit: int = 50) -> list[tuple[DeploymentRequest, str]]:
    """Requests awaiting approval in environments ``user`` approves that they may not decide now, each
    with the reason (``eligibility``: their own request, already decided and waiting on others, a
    change they authored, a suspension or lapsed training, a freeze). Shown apart from the queue,
    never as "awaiting your decision". A fixed number of queries."""
    now = timezone.now()
    standing = eligibility.standing_of(user, now=now, with_freezes=True)
    if not standing.approve_environment_ids:
        return []
    candidates = (
        DeploymentRequest.objects.filter(
            environment_id__in=standing.approve_environment_ids,
            status=RequestStatus.AWAITING_APPROVAL,
            expires_at__gt=now,
        )
        .select_related("environment__service", "requester")
        .prefetch_related(_APPROVALS)
        .order_by("created_at", "id")
    )
    out = []
    for row in candidates[: limit * 4]:
        approvals = row.approvals.all()
        if eligibility.may_decide(user=user, request=row, now=now, approvals=approvals, standing=standing):
            continue
        if any(a.approver_id == user.pk for a in approvals):
            reason = "You have decided; waiting on others."
        else:
            refusal = eligibility.decision_refusal(user=user, request=row, now=now, approvals=approvals,
                                                   standing=standing)
            reason = refusal.message if refusal is not None else "You may not decide it now."
        out.append((row, reason))
        if len(out) >= limit:
            break
    return out


def my_requests(*, user) -> QuerySet[DeploymentRequest]:
    return (DeploymentRequest.objects.filter(requester=user)
            .select_related("environment__service", "requester").prefetch_related(_APPROVALS)
            .order_by("-created_at", "-id"))


def home_summary(*, user) -> dict:
    visible = permissions.visible_requests(user)
    return {
        "awaiting_me": requests_awaiting(user=user)[:20],
        "mine": my_requests(user=user)[:20],
        "open_count": visible.filter(status__in=OPEN_STATUSES).count(),
    }


# --- dashboard lists ----------------------------------------------------------------------------

QUEUE_STATUSES = {
    "": (RequestStatus.AWAITING_APPROVAL,),
    RequestStatus.AWAITING_APPROVAL.value: (RequestStatus.AWAITING_APPROVAL,),
    RequestStatus.PENDING_CHECKS.value: (RequestStatus.PENDING_CHECKS,),
    "open": OPEN_STATUSES,
}
_HEX = re.compile(r"^[0-9a-f]{4,40}$")


@dataclass(frozen=True)
class ListFilters:
    """What a dashboard list is narrowed to (from the query string)."""

    service: str = ""
    environment: int | None = None
    status: str = ""
    q: str = ""

    @classmethod
    def from_query(cls, data) -> ListFilters:
        env = (data.get("environment") or "").strip()
        return cls(
            service=(data.get("service") or "").strip()[:100],
            environment=int(env) if env.isdigit() else None,
            status=(data.get("status") or "").strip()[:32],
            q=(data.get("q") or "").strip()[:200],
        )


def _narrow(queryset: QuerySet, filters: ListFilters, prefix: str = "") -> QuerySet:
    if filters.service:
        queryset = queryset.filter(**{f"{prefix}environment__service__name": filters.service})
    if filters.environment:
        queryset = queryset.filter(**{f"{prefix}environment_id": filters.environment})
    q = filters.q
    if q:
        condition = (
            Q(**{f"{prefix}ref__icontains": q})
            | Q(**{f"{prefix}title__icontains": q})
            | Q(**{f"{prefix}requester_login__icontains": q})
            | Q(**{f"{prefix}environment__service__name__icontains": q})
        )
        if _HEX.match(q.lower()):
            condition |= Q(**{f"{prefix}sha__startswith": q.lower()})
        if q.lstrip("#").isdigit():
            condition |= Q(**{f"{prefix}pk": int(q.lstrip("#"))})
        queryset = queryset.filter(condition)
    return queryset


def approver_queue(*, user, filters: ListFilters) -> QuerySet[DeploymentRequest]:
    """The signed-in approver's queue: open requests they may still decide on, oldest first."""
    statuses = QUEUE_STATUSES.get(filters.status, QUEUE_STATUSES[""])
    return _narrow(requests_awaiting(user=user, statuses=statuses), filters)


def my_request_list(*, user, filters: ListFilters) -> QuerySet[DeploymentRequest]:
    queryset = my_requests(user=user)
    if filters.status in RequestStatus.values:
        queryset = queryset.filter(status=filters.status)
    elif filters.status == "open":
        queryset = queryset.filter(status__in=OPEN_STATUSES)
    return _narrow(queryset, filters)


def recent_decisions(*, user, filters: ListFilters) -> QuerySet[Approval]:
    """Decisions on requests ``user`` may see, newest first."""
    queryset = Approval.objects.filter(request__in=permissions.visible_requests(user).values("pk"))
    if filters.status in (Decision.APPROVE, Decision.REJECT):
        queryset = queryset.filter(decision=filters.status)
    return (
        _narrow(queryset, filters, prefix="request__")
        .select_related("approver", "request__environment__service")
        .order_by("-created_at", "-id")
    )


def filter_environments(*, user, action: str | None) -> list[tuple[int, str, str]]:
    """(id, service name, environment name) offered in a list's filter: the environments the user may
    act on (or see, for ``None``). Plain tuples: hundreds of them render fast."""
    queryset = (permissions.visible_environments(user) if action is None
                else permissions.environments_for(user, action))
    return list(queryset.order_by("service__name", "name").values_list("pk", "service__name", "name"))


def last_successful_deployment(request: DeploymentRequest) -> DeploymentRequest | None:
    """The environment's most recent deployed request before ``request`` (one indexed query)."""
    return (
        DeploymentRequest.objects.filter(
            environment_id=request.environment_id, status=RequestStatus.DEPLOYED, created_at__lt=request.created_at
        )
        .only("id", "sha", "ref", "finished_at", "created_at")
        .order_by("-created_at", "-id")
        .first()
    )
