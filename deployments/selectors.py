"""Reads for views and the API; each applies the permission layer first."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet
from django.shortcuts import get_object_or_404

from . import permissions
from .choices import OPEN_STATUSES, RequestStatus
from .models import Approval, DeploymentRequest, RequestEvent


def request_for(*, user, pk: int) -> DeploymentRequest:
    """One request ``user`` may see, with what its page needs; 404 otherwise."""
    queryset = permissions.visible_requests(user).select_related(
        "environment__service", "requester", "superseded_by"
    ).prefetch_related(
        Prefetch("approvals", queryset=Approval.objects.select_related("approver")),
        Prefetch("events", queryset=RequestEvent.objects.select_related("actor")),
    )
    return get_object_or_404(queryset, pk=pk)


def requests_awaiting(*, user) -> QuerySet[DeploymentRequest]:
    """Requests waiting for ``user``'s decision, oldest first."""
    environments = permissions.environments_for(user, permissions.APPROVE)
    return (
        DeploymentRequest.objects.filter(environment__in=environments.values("pk"),
                                         status=RequestStatus.AWAITING_APPROVAL)
        .exclude(requester=user)
        .exclude(approvals__approver=user)
        .select_related("environment__service", "requester")
        .order_by("created_at", "id")
    )


def my_requests(*, user) -> QuerySet[DeploymentRequest]:
    return (DeploymentRequest.objects.filter(requester=user)
            .select_related("environment__service").order_by("-created_at", "-id"))


def home_summary(*, user) -> dict:
    visible = permissions.visible_requests(user)
    return {
        "awaiting_me": requests_awaiting(user=user)[:20],
        "mine": my_requests(user=user)[:20],
        "open_count": visible.filter(status__in=OPEN_STATUSES).count(),
    }
