"""The DORA metrics and approval wait times, per service and environment, over a period.

Definitions (docs/evidence.md, "Metrics"):

- a *deployment* is a request that finished deploying in the period (``finished_at``): deployed
  (success) or failed;
- **deployment frequency**: successful deployments per day of the period;
- **lead time for changes**: from the change set's first commit (``first_commit_at``, taken from
  the change set the GitHub and GitLab integrations record) — or, when the portal does not know it, from the
  request — to deployed; median and 95th percentile;
- a *failed change* is a deployment that failed, was flagged as a failed change (an incident traced
  to it: ``failed_change_at``) or was followed by a rollback (``rolled_back_by``, recorded when the
  rollback succeeded); a *good* deployment is a success that is none of these;
- **change failure rate**: failed changes / all deployments;
- **time to restore**: from a failed change that follows a good deployment (the start of an outage)
  to the environment's next good deployment; median;
- **approval wait**: from the request to its approval (quorum reached), per environment, and from
  the request to each approver's decision, per approver; median and 95th percentile.

On PostgreSQL each figure is one aggregate query (``percentile_cont``; time to restore looks up, for
each failure only, the deployment before it and the next success on the ``request_env_finished``
index), so a million requests stay fast (``bench/metrics.py``); other
databases (SQLite for ``make run`` and the tests) compute the same figures in Python from one
``values_list`` query each.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.db import connection, transaction
from django.utils import timezone

from deployments.choices import RequestStatus
from deployments.models import Approval, DeploymentRequest, Environment

HOUR = 3600.0


@dataclass(frozen=True)
class Period:
    """Inclusive calendar days (UTC)."""

    date_from: date
    date_to: date

    @classmethod
    def last_days(cls, days: int = 30, *, today: date | None = None) -> Period:
        today = today or timezone.localdate()
        return cls(today - timedelta(days=days - 1), today)

    @property
    def start(self) -> datetime:
        return datetime.combine(self.date_from, time.min, tzinfo=timezone.get_current_timezone())

    @property
    def end(self) -> datetime:
        return datetime.combine(self.date_to + timedelta(days=1), time.min, tzinfo=timezone.get_current_timezone())

    @property
    def days(self) -> int:
        return (self.date_to - self.date_from).days + 1


def percentile(values: list[float], fraction: float) -> float | None:
    """Linear interpolation between closest ranks (PostgreSQL's ``percentile_cont``)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = fraction * (len(ordered) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def earliest_timestamp(values: Iterable) -> str | None:
    """The earliest of ISO 8601 timestamps with an offset (anything else ignored), as UTC ``…Z`` text:
    what the CI integrations record as a change set's ``first_commit_at``."""
    parsed = []
    for value in values:
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            continue
        if moment.tzinfo is not None:
            parsed.append(moment)
    return min(parsed).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if parsed else None


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / HOUR, 2)


def _scope(environment_ids: Iterable[int] | None, service: str, environment: str) -> list[int]:
    queryset = Environment.objects.all()
    if environment_ids is not None:
        queryset = queryset.filter(pk__in=list(environment_ids))
    if service:
        queryset = queryset.filter(service__name=service)
    if environment:
        queryset = queryset.filter(name=environment)
    return list(queryset.values_list("pk", flat=True))


def _environments(ids: list[int]) -> dict[int, tuple[str, str, str]]:
    return {pk: (s, n, t) for pk, s, n, t in
            Environment.objects.filter(pk__in=ids).values_list("pk", "service__name", "name", "tier")}


# --- PostgreSQL: one aggregate query per figure ---------------------------------------------------

# A failed change: failed, flagged, or followed by a rollback (columns of the row: no join, no history
# scan); a good deployment: a success that is none of these.

_PG_DEPLOYMENTS = """
SELECT environment_id,
       COUNT(*) FILTER (WHERE status = 'deployed'),
       COUNT(*) FILTER (WHERE status = 'failed'),
       COUNT(*) FILTER (WHERE status = 'deployed' AND failed_change_at IS NOT NULL),
       COUNT(*) FILTER (WHERE status = 'deployed' AND rolled_back_by_id IS NOT NULL),
       COUNT(*) FILTER (WHERE status = 'failed' OR failed_change_at IS NOT NULL
                              OR rolled_back_by_id IS NOT NULL),
       percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY lead_s) FILTER (WHERE status = 'deployed')
FROM (
    SELECT environment_id, status, failed_change_at, rolled_back_by_id,
           EXTRACT(EPOCH FROM finished_at - CASE WHEN first_commit_at <= finished_at
               THEN first_commit_at ELSE created_at END) AS lead_s
    FROM {table}
    WHERE status IN ('deployed', 'failed') AND finished_at >= %(start)s AND finished_at < %(end)s
      AND environment_id = ANY(%(ids)s)
) AS finished
GROUP BY environment_id
"""

# Time to restore: only failed changes are looked at (a few percent of the deployments), each with two
# index lookups on request_env_finished (the deployment before it, the next good one), never a sort
# of the whole period.
_PG_RESTORES = """
SELECT f.environment_id, COUNT(*),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM restored.at - f.finished_at))
FROM {table} f
LEFT JOIN LATERAL (
    SELECT (p.status = 'failed' OR p.failed_change_at IS NOT NULL OR p.rolled_back_by_id IS NOT NULL) AS bad
    FROM {table} p
    WHERE p.environment_id = f.environment_id AND p.status IN ('deployed', 'failed')
      AND p.finished_at >= %(start)s AND p.finished_at < f.finished_at
    ORDER BY p.finished_at DESC, p.id DESC LIMIT 1
) AS previous ON TRUE
JOIN LATERAL (
    SELECT s.finished_at AS at FROM {table} s
    WHERE s.environment_id = f.environment_id
      AND s.status = 'deployed' AND s.failed_change_at IS NULL AND s.rolled_back_by_id IS NULL
      AND s.finished_at > f.finished_at AND s.finished_at < %(end)s
    ORDER BY s.finished_at LIMIT 1
) AS restored ON TRUE
WHERE (f.status = 'failed' OR f.failed_change_at IS NOT NULL OR f.rolled_back_by_id IS NOT NULL)
  AND f.status IN ('deployed', 'failed')
  AND f.finished_at >= %(start)s AND f.finished_at < %(end)s
  AND f.environment_id = ANY(%(ids)s) AND NOT COALESCE(previous.bad, FALSE)
GROUP BY f.environment_id
"""

_PG_ENV_WAIT = """
SELECT environment_id, COUNT(*),
       percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM decided_at - created_at))
FROM {table}
WHERE approval_expires_at IS NOT NULL AND decided_at >= %(start)s AND decided_at < %(end)s
  AND environment_id = ANY(%(ids)s)
GROUP BY environment_id
"""

_PG_APPROVER_WAIT = """
SELECT a.approver_id, u.username, COUNT(*),
       percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM a.created_at - r.created_at))
FROM {approvals} a JOIN {table} r ON r.id = a.request_id JOIN {users} u ON u.id = a.approver_id
WHERE a.created_at >= %(start)s AND a.created_at < %(end)s AND r.environment_id = ANY(%(ids)s)
GROUP BY a.approver_id, u.username
"""


# The sorts behind the percentiles of a year of deployments fit in memory with this (the default 4 MB
# spills them to disk); set for the metrics' own transaction only.
METRICS_WORK_MEM = "64MB"


def _pg(sql: str, params: dict) -> list[tuple]:
    """Run one metrics query (p50 and p95 come back as one array: one sort for both)."""
    from django.contrib.auth import get_user_model

    text = sql.format(table=DeploymentRequest._meta.db_table, approvals=Approval._meta.db_table,
                      users=get_user_model()._meta.db_table)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL work_mem = %s", [METRICS_WORK_MEM])
        cursor.execute("SET LOCAL jit = off")  # compiling costs more than it saves on these scans
        cursor.execute(text, params)
        return cursor.fetchall()


def _pair(values) -> tuple:
    """(p50, p95) from ``percentile_cont(ARRAY[0.5, 0.95])`` (NULL when no row was aggregated)."""
    return tuple(values) if values else (None, None)


def _deployments_pg(ids, period):
    params = {"start": period.start, "end": period.end, "ids": ids}
    restores = {env: (count, p50) for env, count, p50 in _pg(_PG_RESTORES, params)}
    return {env: (ok, failed, flagged, rolled_back, bad, *_pair(leads), *restores.get(env, (0, None)))
            for env, ok, failed, flagged, rolled_back, bad, leads in _pg(_PG_DEPLOYMENTS, params)}


def _env_wait_pg(ids, period):
    rows = _pg(_PG_ENV_WAIT, {"start": period.start, "end": period.end, "ids": ids})
    return {env: (count, *_pair(waits)) for env, count, waits in rows}


def _approver_wait_pg(ids, period):
    rows = _pg(_PG_APPROVER_WAIT, {"start": period.start, "end": period.end, "ids": ids})
    return [(pk, username, count, *_pair(waits)) for pk, username, count, waits in rows]


# --- other databases: the same figures in Python --------------------------------------------------


def _lead_start(first_commit: datetime | None, created: datetime, finished: datetime) -> datetime:
    return first_commit if first_commit is not None and first_commit <= finished else created


def _deployments_py(ids, period):
    rows = (DeploymentRequest.objects.filter(
        environment_id__in=ids, status__in=(RequestStatus.DEPLOYED, RequestStatus.FAILED),
        finished_at__gte=period.start, finished_at__lt=period.end,
    ).order_by("environment_id", "finished_at", "id")
        .values_list("environment_id", "status", "finished_at", "created_at", "first_commit_at",
                     "failed_change_at", "rolled_back_by_id"))
    by_env: dict[int, list] = defaultdict(list)
    for env_id, status, finished, created, first_commit, flagged_at, rolled_back_by in rows.iterator(chunk_size=2000):
        flagged, rolled_back = flagged_at is not None, rolled_back_by is not None
        bad = status == RequestStatus.FAILED or flagged or rolled_back
        by_env[env_id].append((status, finished, created, first_commit, flagged, rolled_back, bad))
    out = {}
    for env_id, items in by_env.items():
        deployed = [(f - _lead_start(fc, c, f)).total_seconds()
                    for s, f, c, fc, *_ in items if s == RequestStatus.DEPLOYED]
        restores = []
        for index, (_s, finished, _c, _fc, _fl, _rb, bad) in enumerate(items):
            if not bad or (index and items[index - 1][-1]):
                continue  # not a failed change, or the outage had already started
            following = next((f for s, f, *_, b in items[index + 1:] if s == RequestStatus.DEPLOYED and not b), None)
            if following is not None:
                restores.append((following - finished).total_seconds())
        failed = sum(1 for item in items if item[0] == RequestStatus.FAILED)
        flagged = sum(1 for item in items if item[0] == RequestStatus.DEPLOYED and item[4])
        rolled_back = sum(1 for item in items if item[0] == RequestStatus.DEPLOYED and item[5])
        out[env_id] = (len(deployed), failed, flagged, rolled_back, sum(1 for item in items if item[-1]),
                       percentile(deployed, 0.5), percentile(deployed, 0.95),
                       len(restores), percentile(restores, 0.5))
    return out


def _env_wait_py(ids, period):
    waits: dict[int, list[float]] = defaultdict(list)
    for env_id, decided, created in DeploymentRequest.objects.filter(
        environment_id__in=ids, approval_expires_at__isnull=False, decided_at__gte=period.start,
        decided_at__lt=period.end,
    ).values_list("environment_id", "decided_at", "created_at").iterator(chunk_size=2000):
        waits[env_id].append((decided - created).total_seconds())
    return {k: (len(v), percentile(v, 0.5), percentile(v, 0.95)) for k, v in waits.items()}


def _approver_wait_py(ids, period):
    waits: dict[tuple[int, str], list[float]] = defaultdict(list)
    for approver_id, username, at, created in Approval.objects.filter(
        request__environment_id__in=ids, created_at__gte=period.start, created_at__lt=period.end,
    ).values_list("approver_id", "approver__username", "created_at", "request__created_at").iterator(chunk_size=2000):
        waits[(approver_id, username)].append((at - created).total_seconds())
    return [(k[0], k[1], len(v), percentile(v, 0.5), percentile(v, 0.95)) for k, v in waits.items()]


def _postgres() -> bool:
    return connection.vendor == "postgresql"


# --- the figures ----------------------------------------------------------------------------------


def dora_metrics(period: Period, *, environment_ids: Iterable[int] | None = None, service: str = "",
                 environment: str = "") -> list[dict]:
    """One row per environment with any deployment or approval in the period (``environment_ids``:
    the environments the reader may see, or None for all)."""
    ids = _scope(environment_ids, service, environment)
    if not ids:
        return []
    deployments = (_deployments_pg if _postgres() else _deployments_py)(ids, period)
    waits = (_env_wait_pg if _postgres() else _env_wait_py)(ids, period)
    names = _environments([pk for pk in ids if pk in deployments or pk in waits])
    rows = []
    for env_id, (service_name, env_name, tier) in sorted(names.items(), key=lambda item: item[1]):
        ok, failed, flagged, rolled_back, bad, lead50, lead95, restores, restore50 = deployments.get(
            env_id, (0, 0, 0, 0, 0, None, None, 0, None))
        approved, wait50, wait95 = waits.get(env_id, (0, None, None))
        total = ok + failed
        rows.append({
            "service": service_name, "environment": env_name, "tier": tier,
            "deployments": ok, "failed_deployments": failed,
            "flagged_deployments": flagged, "rolled_back_deployments": rolled_back, "failed_changes": bad,
            "deployment_frequency_per_day": round(ok / period.days, 3),
            "lead_time_p50_hours": _hours(lead50), "lead_time_p95_hours": _hours(lead95),
            "change_failure_rate": round(bad / total, 4) if total else None,
            "restores": restores, "time_to_restore_p50_hours": _hours(restore50),
            "approved_requests": approved,
            "approval_wait_p50_hours": _hours(wait50), "approval_wait_p95_hours": _hours(wait95),
        })
    return rows


def approver_waits(period: Period, *, environment_ids: Iterable[int] | None = None, service: str = "",
                   environment: str = "") -> list[dict]:
    """Per approver: how long requests waited for their decision (approve or reject)."""
    ids = _scope(environment_ids, service, environment)
    if not ids:
        return []
    rows = (_approver_wait_pg if _postgres() else _approver_wait_py)(ids, period)
    return sorted(
        ({"approver": username, "decisions": count, "wait_p50_hours": _hours(p50), "wait_p95_hours": _hours(p95)}
         for _pk, username, count, p50, p95 in rows),
        key=lambda row: row["approver"],
    )


__all__ = ["Period", "earliest_timestamp", "approver_waits", "dora_metrics", "percentile"]
