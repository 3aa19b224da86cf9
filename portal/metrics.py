"""``/metrics``: the portal's figures in Prometheus' text format, computed when scraped.

Each layer registers a *source* (``register_metrics_source(name, collect)``) from its app's
``ready()``: the gate (requests and approvals), the outbox (deliveries and attempts), notifications,
the periodic jobs and the audit chain (compliance), and each installed CI integration (webhook
intake). A source is a function returning prometheus-client metric families; it runs a fixed,
small number of aggregate queries. Nothing is counted in process memory, so every gunicorn worker
on every host answers the same figures (no multiprocess mode, no shared directory).

Access is denied by default: the scraper presents ``Authorization: Bearer <PORTAL_METRICS_TOKEN>``
or connects from a network listed in ``PORTAL_METRICS_ALLOWED_NETWORKS`` (the direct peer address,
``REMOTE_ADDR``). With neither set, ``/metrics`` answers 403 to everyone.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = [
    "CounterMetricFamily",
    "GaugeMetricFamily",
    "HistogramMetricFamily",
    "age_seconds",
    "metrics_view",
    "register_metrics_source",
    "render_metrics",
    "unregister_metrics_source",
    "webhook_intake_source",
]

logger = logging.getLogger(__name__)

MetricsSource = Callable[[], Iterable[Metric]]
_sources: dict[str, MetricsSource] = {}


def register_metrics_source(name: str, collect: MetricsSource) -> None:
    """Add (or replace, by name) a function whose metric families ``/metrics`` shows."""
    _sources[name] = collect


def unregister_metrics_source(name: str) -> None:
    _sources.pop(name, None)


def age_seconds(moment: datetime | None, now: datetime) -> float:
    return 0.0 if moment is None else max((now - moment).total_seconds(), 0.0)


class _PortalCollector:
    """Runs every registered source at scrape time; a source that fails is reported, not fatal."""

    def collect(self):
        up = GaugeMetricFamily("portal_metrics_source_up", "1 when the source's figures were computed.",
                               labels=["source"])
        took = GaugeMetricFamily("portal_metrics_source_duration_seconds", "Time to compute the source.",
                                 labels=["source"])
        for name, source in sorted(_sources.items()):
            started = time.monotonic()
            try:
                families = list(source())
            except Exception:  # noqa: BLE001 - one broken source must not hide the others
                logger.exception("metrics source %s failed", name)
                up.add_metric([name], 0)
                families = []
            else:
                up.add_metric([name], 1)
            took.add_metric([name], round(time.monotonic() - started, 4))
            yield from families
        yield up
        yield took


def render_metrics() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_PortalCollector())
    return generate_latest(registry)


def _allowed(request) -> tuple[bool, int, str]:
    token = settings.PORTAL_METRICS_TOKEN
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if token and header.startswith("Bearer "):
        if hmac.compare_digest(header.removeprefix("Bearer ").strip().encode(), token.encode()):
            return True, 200, ""
        return False, 401, "The bearer token is not the metrics token."
    networks = settings.PORTAL_METRICS_ALLOWED_NETWORKS
    if networks:
        try:
            peer = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
        except ValueError:
            peer = None
        if peer is not None and any(peer in ipaddress.ip_network(net) for net in networks):
            return True, 200, ""
    if token:
        return False, 401, "Metrics need Authorization: Bearer <PORTAL_METRICS_TOKEN>."
    return False, 403, ("Metrics are off: set PORTAL_METRICS_TOKEN or PORTAL_METRICS_ALLOWED_NETWORKS."
                        if not networks else "This address may not read the metrics.")


@never_cache
@require_GET
def metrics_view(request):
    allowed, status, message = _allowed(request)
    if not allowed:
        logger.warning("metrics refused (%s) for %s", status, request.META.get("REMOTE_ADDR", "?"))
        code = "not_authenticated" if status == 401 else "permission_denied"
        response = JsonResponse({"error": {"code": code, "message": message, "details": {}}}, status=status)
        if status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(render_metrics(), content_type=CONTENT_TYPE_LATEST)


# --- a helper integrations share ---------------------------------------------------------------------


def webhook_intake_source(source: str, *, delivery_model, rejection_model, window: timedelta = timedelta(hours=1)):
    """Metrics of one CI system's webhook intake: deliveries kept (by state), received and refused in
    the last ``window`` (refusals by reason; a rejection row counts every refused call it stands for)."""
    from django.db.models import Count, Q, Sum

    def collect():
        now = timezone.now()
        since = now - window
        received = GaugeMetricFamily("portal_webhook_deliveries", "Verified webhook deliveries kept, by state.",
                                     labels=["source", "state"])
        for row in delivery_model.objects.values("state").annotate(n=Count("id")).order_by("state"):
            received.add_metric([source, row["state"]], row["n"])
        recent = GaugeMetricFamily("portal_webhook_received_last_hour",
                                   "Verified webhook deliveries received in the last hour.", labels=["source"])
        recent.add_metric([source], delivery_model.objects.filter(received_at__gte=since).count())
        refused = GaugeMetricFamily("portal_webhook_rejected_last_hour",
                                    "Webhook calls refused in the last hour (bad signature or token, too large...).",
                                    labels=["source", "reason"])
        rows = (rejection_model.objects.filter(Q(received_at__gte=since) | Q(last_received_at__gte=since))
                .values("reason").annotate(n=Sum("count")).order_by("reason"))
        for row in rows:
            refused.add_metric([source, row["reason"]], row["n"] or 0)
        return [received, recent, refused]

    return collect
