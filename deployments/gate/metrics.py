"""The gate's figures for ``/metrics`` (portal/metrics.py): requests by state, approvals by decision,
how long requests wait for a decision, and how many arrive. Four aggregate queries per scrape."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count, DurationField, ExpressionWrapper, F, Min, Q, Sum
from django.utils import timezone

from deployments.choices import RequestStatus
from deployments.gate.models import Approval, DeploymentRequest
from portal.metrics import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    age_seconds,
    register_metrics_source,
)

# Seconds from submission to the final decision (approved, rejected, blocked by checks).
WAIT_BUCKETS = (60, 300, 900, 3600, 4 * 3600, 8 * 3600, 24 * 3600, 72 * 3600)


def _wait_histogram() -> HistogramMetricFamily:
    decided = DeploymentRequest.objects.filter(decided_at__isnull=False)
    wait = ExpressionWrapper(F("decided_at") - F("created_at"), output_field=DurationField())
    aggregates = {
        f"le_{bucket}": Count("id", filter=Q(decided_at__lte=F("created_at") + timedelta(seconds=bucket)))
        for bucket in WAIT_BUCKETS
    }
    row = decided.aggregate(total=Count("id"), waited=Sum(wait), **aggregates)
    buckets = [(str(float(bucket)), row[f"le_{bucket}"]) for bucket in WAIT_BUCKETS]
    buckets.append(("+Inf", row["total"]))
    waited = row["waited"]
    histogram = HistogramMetricFamily(
        "portal_approval_wait_seconds", "Time from a request's submission to its decision (decided requests)."
    )
    histogram.add_metric([], buckets, sum_value=waited.total_seconds() if waited else 0.0)
    return histogram


def collect():
    now = timezone.now()
    requests = GaugeMetricFamily("portal_deployment_requests", "Deployment requests, by state.", labels=["state"])
    counts = dict(DeploymentRequest.objects.order_by().values_list("status").annotate(n=Count("id")))
    for state in RequestStatus.values:
        requests.add_metric([state], counts.get(state, 0))
    approvals = CounterMetricFamily("portal_approvals", "Approvals and rejections recorded, by decision.",
                                    labels=["decision"])
    for decision, n in Approval.objects.order_by().values_list("decision").annotate(n=Count("id")):
        approvals.add_metric([decision], n)
    waiting = GaugeMetricFamily("portal_oldest_awaiting_approval_age_seconds",
                                "Age of the oldest request still awaiting approval (0 when none).")
    oldest = DeploymentRequest.objects.filter(status=RequestStatus.AWAITING_APPROVAL).aggregate(m=Min("created_at"))
    waiting.add_metric([], age_seconds(oldest["m"], now))
    recent = GaugeMetricFamily("portal_deployment_requests_created_last_hour",
                               "Requests submitted in the last hour, by where they came from.", labels=["source"])
    for source, n in (DeploymentRequest.objects.filter(created_at__gte=now - timedelta(hours=1)).order_by()
                      .values_list("source").annotate(n=Count("id"))):
        recent.add_metric([source], n)
    return [requests, approvals, _wait_histogram(), waiting, recent]


register_metrics_source("deployments.gate", collect)
