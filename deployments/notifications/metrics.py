"""Notifications' figures for ``/metrics`` (portal/metrics.py): e-mail and chat messages by status
(``failed`` = retries exhausted) and the oldest one still waiting to be sent."""

from __future__ import annotations

from django.db.models import Count, Min
from django.utils import timezone

from deployments.notifications.models import NotificationLog, NotificationStatus
from portal.metrics import GaugeMetricFamily, age_seconds, register_metrics_source


def collect():
    now = timezone.now()
    messages = GaugeMetricFamily("portal_notifications", "Notifications, by channel and status.",
                                 labels=["channel", "status"])
    oldest = GaugeMetricFamily("portal_notifications_oldest_unsent_age_seconds",
                               "Age of the oldest notification still pending or sending (0 when none).")
    first_unsent = None
    for row in (NotificationLog.objects.order_by().values("channel", "status")
                .annotate(n=Count("id"), first=Min("created_at"))):
        messages.add_metric([row["channel"], row["status"]], row["n"])
        if row["status"] in (NotificationStatus.PENDING, NotificationStatus.SENDING) and row["first"]:
            first_unsent = min(first_unsent or row["first"], row["first"])
    oldest.add_metric([], age_seconds(first_unsent, now))
    return [messages, oldest]


register_metrics_source("deployments.notifications", collect)
