"""Reads of the evidence pages, each through the one permission layer."""

from __future__ import annotations

from datetime import date

from django.db.models import Prefetch, QuerySet

from compliance.reports.registry import Filters
from deployments.choices import AUTHORIZING_STATUSES
from deployments.gate import permissions
from deployments.models import Approval, DeploymentRequest, EvidenceSample


def changes_in_period(*, user, date_from: date, date_to: date, service: str = "", environment: str = "",
                      emergency_only: bool = False) -> QuerySet[DeploymentRequest]:
    """Authorized changes created in the period that ``user`` may see, with who authorized each
    (decisions prefetched: a fixed number of queries whatever the number of rows)."""
    queryset = Filters(date_from=date_from, date_to=date_to).in_period(
        permissions.visible_requests(user).filter(status__in=AUTHORIZING_STATUSES)
    )
    if service:
        queryset = queryset.filter(environment__service__name=service)
    if environment:
        queryset = queryset.filter(environment__name=environment)
    if emergency_only:
        queryset = queryset.filter(is_emergency=True)
    return (
        queryset.select_related("environment__service", "requester", "emergency_review")
        .prefetch_related(Prefetch("approvals", queryset=Approval.objects.select_related("approver")))
        .order_by("created_at", "id")
    )


def samples(*, user) -> QuerySet[EvidenceSample]:
    if not permissions.sees_everything(user):
        return EvidenceSample.objects.none()
    return EvidenceSample.objects.select_related("drawn_by").order_by("-drawn_at", "-id")


def emergency_changes_for(*, user) -> QuerySet[DeploymentRequest]:
    """Approved emergency changes ``user`` may see, newest first, with their review."""
    return (
        permissions.visible_requests(user)
        .filter(is_emergency=True, approval_expires_at__isnull=False)
        .select_related("environment__service", "requester", "emergency_review__reviewer")
        .order_by("-decided_at", "-id")
    )
