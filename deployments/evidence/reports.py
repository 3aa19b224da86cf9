"""Reports of the evidence package, registered with ``compliance.reports`` (and their token-scoped
variants): the emergency-review report and the delivery (DORA and approval) metrics."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from django.utils import timezone

from compliance.reports.access import register_scoped_rows
from compliance.reports.registry import Column, Filters, Report, register
from deployments.choices import EmergencyReviewOutcome
from deployments.evidence.services import emergency_changes, review_hours
from deployments.metrics.queries import Period, approver_waits, dora_metrics

EMERGENCY_COLUMNS = (
    Column("request_id", "Request"),
    Column("service", "Service"),
    Column("environment", "Environment"),
    Column("requester", "Requester"),
    Column("justification", "Justification"),
    Column("approved_at", "Approved at (UTC)"),
    Column("review_due_at", "Review due (UTC)"),
    Column("reviewer", "Reviewer"),
    Column("reviewed_at", "Reviewed at (UTC)"),
    Column("outcome", "Outcome", choices=tuple(EmergencyReviewOutcome.choices)),
    Column("notes", "Review notes"),
    Column("state", "State"),
)


def emergency_review_rows(filters: Filters, environment_ids: frozenset[int] | None = None) -> Iterator[dict]:
    """Every approved emergency change approved in the period and its review: one query."""
    queryset = filters.in_period(emergency_changes(), "decided_at")
    if environment_ids is not None:
        queryset = queryset.filter(environment__in=environment_ids)
    if filters.service:
        queryset = queryset.filter(environment__service__name=filters.service)
    if filters.environment:
        queryset = queryset.filter(environment__name=filters.environment)
    now, hours = timezone.now(), review_hours()
    rows = queryset.order_by("decided_at", "id").values_list(
        "pk", "environment__service__name", "environment__name", "requester__username", "requester_login",
        "emergency_justification", "decided_at", "emergency_review__reviewer__username",
        "emergency_review__created_at", "emergency_review__outcome", "emergency_review__notes",
        "emergency_review__due_at",
    )
    for (pk, service, environment, requester, login, justification, decided, reviewer, reviewed, outcome, notes,
         recorded_due) in rows.iterator(chunk_size=2000):
        due = recorded_due or decided + timedelta(hours=hours)
        if reviewed is not None:
            state = "reviewed on time" if reviewed <= due else "reviewed late"
        else:
            state = "overdue (violation opened)" if due <= now else "awaiting review"
        yield {
            "request_id": pk, "service": service, "environment": environment, "requester": requester or login,
            "justification": justification, "approved_at": decided, "review_due_at": due, "reviewer": reviewer,
            "reviewed_at": reviewed, "outcome": outcome, "notes": notes, "state": state,
        }


EMERGENCY_REVIEWS = Report(
    slug="emergency-reviews",
    title="Emergency changes reviewed after the fact",
    description="Every emergency change approved in the period, when its review was due, who reviewed it, the "
                "outcome, and the changes whose review is overdue (each has opened a violation).",
    columns=EMERGENCY_COLUMNS,
    rows=emergency_review_rows,
    order=25,
)

METRIC_COLUMNS = (
    Column("scope", "Per"),
    Column("service", "Service"),
    Column("environment", "Environment / approver"),
    Column("deployments", "Deployments"),
    Column("decisions", "Decisions (per approver)"),
    Column("failed_deployments", "Failed deployments"),
    Column("flagged_deployments", "Flagged as failed changes"),
    Column("rolled_back_deployments", "Followed by a rollback"),
    Column("failed_changes", "Failed changes"),
    Column("deployment_frequency_per_day", "Deployments per day"),
    Column("lead_time_p50_hours", "Lead time p50 (h)"),
    Column("lead_time_p95_hours", "Lead time p95 (h)"),
    Column("change_failure_rate", "Change failure rate"),
    Column("time_to_restore_p50_hours", "Time to restore p50 (h)"),
    Column("approval_wait_p50_hours", "Approval wait p50 (h)"),
    Column("approval_wait_p95_hours", "Approval wait p95 (h)"),
)


def _period(filters: Filters) -> Period:
    default = Period.last_days(30)
    return Period(filters.date_from or default.date_from, filters.date_to or default.date_to)


def metric_rows(filters: Filters, environment_ids: frozenset[int] | None = None) -> Iterator[dict]:
    period = _period(filters)
    scope = {"environment_ids": environment_ids, "service": filters.service, "environment": filters.environment}
    for row in dora_metrics(period, **scope):
        yield {"scope": "environment", **row}
    for row in approver_waits(period, **scope):
        yield {"scope": "approver", "service": "", "environment": row["approver"], "decisions": row["decisions"],
               "approval_wait_p50_hours": row["wait_p50_hours"], "approval_wait_p95_hours": row["wait_p95_hours"]}


DELIVERY_METRICS = Report(
    slug="delivery-metrics",
    title="Delivery metrics (DORA and approval wait)",
    description="Per service and environment: deployment frequency, lead time for changes, change failure rate, "
                "time to restore and approval wait (p50/p95); then the approval wait per approver. Without a "
                "period: the last 30 days.",
    columns=METRIC_COLUMNS,
    rows=metric_rows,
    order=60,
)

for _report in (EMERGENCY_REVIEWS, DELIVERY_METRICS):
    register(_report)
register_scoped_rows(EMERGENCY_REVIEWS.slug, emergency_review_rows)
register_scoped_rows(DELIVERY_METRICS.slug, metric_rows)
