"""The outbox's figures for ``/metrics`` (portal/metrics.py): deliveries by provider and status, the
outbox depth and the age of the oldest undelivered decision, attempts by provider and outcome."""

from __future__ import annotations

from django.db.models import Count, Min
from django.utils import timezone

from deployments.choices import DeliveryStatus
from deployments.delivery import providers
from deployments.delivery.models import DecisionDelivery, DeliveryAttempt
from portal.metrics import CounterMetricFamily, GaugeMetricFamily, age_seconds, register_metrics_source


def collect():
    now = timezone.now()
    deliveries = GaugeMetricFamily("portal_decision_deliveries", "Decisions to deliver to CI, by provider and status.",
                                   labels=["provider", "status"])
    depth = GaugeMetricFamily("portal_outbox_depth", "Decisions not yet delivered (pending), by provider.",
                              labels=["provider"])
    oldest = GaugeMetricFamily("portal_outbox_oldest_undelivered_age_seconds",
                               "Age of the oldest decision not yet delivered, by provider (0 when none).",
                               labels=["provider"])
    pending: dict[str, tuple[int, object]] = {provider.name: (0, None) for provider in providers.all_providers()}
    rows = (DecisionDelivery.objects.order_by().values("provider", "status")
            .annotate(n=Count("id"), oldest=Min("created_at")))
    for row in rows:
        deliveries.add_metric([row["provider"], row["status"]], row["n"])
        if row["status"] == DeliveryStatus.PENDING:
            pending[row["provider"]] = (row["n"], row["oldest"])
    for provider, (n, first) in sorted(pending.items()):
        depth.add_metric([provider], n)
        oldest.add_metric([provider], age_seconds(first, now))
    attempts = CounterMetricFamily("portal_delivery_attempts", "Delivery attempts, by provider and outcome.",
                                   labels=["provider", "outcome"])
    for provider, outcome, n in (DeliveryAttempt.objects.order_by().values_list("delivery__provider", "outcome")
                                 .annotate(n=Count("id"))):
        attempts.add_metric([provider, outcome], n)
    return [deliveries, depth, oldest, attempts]


register_metrics_source("deployments.delivery", collect)
