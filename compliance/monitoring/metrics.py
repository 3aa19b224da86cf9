"""Compliance's figures for ``/metrics`` (portal/metrics.py): each periodic job's heartbeat (last
start and success, late or not, runs and failures) and the audit chain (links, rows written but not
yet sealed, forged entries refused). A handful of queries; the chain's counts read small tables
(``ChainTag`` holds only the rows awaiting their seal)."""

from __future__ import annotations

from django.db.models import Count, Min
from django.utils import timezone

from portal.metrics import CounterMetricFamily, GaugeMetricFamily, register_metrics_source

from ..audit.models import ChainLink, ChainTag, ForgedEntry
from .jobs import job_statuses


def _timestamp(moment) -> float:
    return moment.timestamp() if moment else 0.0


def collect_jobs():
    started = GaugeMetricFamily("portal_job_last_started_timestamp_seconds",
                                "When each periodic job last started (Unix time; 0 never).", labels=["task"])
    succeeded = GaugeMetricFamily("portal_job_last_success_timestamp_seconds",
                                  "When each periodic job last succeeded (Unix time; 0 never).", labels=["task"])
    late = GaugeMetricFamily("portal_job_late", "1 when the job's last success is older than "
                             "PORTAL_JOB_LATE_FACTOR times its interval.", labels=["task"])
    runs = CounterMetricFamily("portal_job_runs", "Finished runs of each periodic job.", labels=["task"])
    failures = CounterMetricFamily("portal_job_failures", "Failed runs of each periodic job.", labels=["task"])
    for status in job_statuses():
        beat = status.heartbeat
        started.add_metric([status.task], _timestamp(beat and beat.last_started_at))
        succeeded.add_metric([status.task], _timestamp(beat and beat.last_success_at))
        late.add_metric([status.task], int(status.late))
        runs.add_metric([status.task], beat.runs if beat else 0)
        failures.add_metric([status.task], beat.failures if beat else 0)
    return [started, succeeded, late, runs, failures]


def collect_audit_chain():
    now = timezone.now()
    head = ChainLink.objects.order_by("-seq").values_list("seq", "sealed_at").first()
    links = CounterMetricFamily("portal_audit_chain_links", "Links in the audit chain (its head's sequence number).")
    links.add_metric([], head[0] if head else 0)
    sealed = GaugeMetricFamily("portal_audit_chain_last_sealed_age_seconds",
                               "Seconds since the newest link was sealed (0 when the chain is empty).")
    sealed.add_metric([], (now - head[1]).total_seconds() if head else 0.0)
    unsealed = GaugeMetricFamily("portal_audit_chain_unsealed_rows",
                                 "Rows written with their tag and not yet linked into the chain, by model.",
                                 labels=["model"])
    for label, n in ChainTag.objects.order_by().values_list("model_label").annotate(n=Count("id")):
        unsealed.add_metric([label], n)
    forged = CounterMetricFamily("portal_audit_forged_entries",
                                 "Rows found in evidence tables that the portal did not write (never linked).")
    forged.add_metric([], ForgedEntry.objects.count())
    unalerted = ForgedEntry.objects.filter(alerted_at__isnull=True).aggregate(first=Min("detected_at"))["first"]
    pending_alert = GaugeMetricFamily("portal_audit_forged_entries_unalerted",
                                      "1 while a forged entry waits for its e-mail to the administrators.")
    pending_alert.add_metric([], int(unalerted is not None))
    return [links, sealed, unsealed, forged, pending_alert]


register_metrics_source("compliance.jobs", collect_jobs)
register_metrics_source("compliance.audit_chain", collect_audit_chain)
