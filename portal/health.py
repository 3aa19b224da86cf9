"""Health endpoints for load balancers and orchestrators.

- ``/healthz`` — liveness: the process answers. Cheap (no database, no broker), so a broker or
  database outage never makes an orchestrator restart every web process.
- ``/readyz`` — readiness: the database answers, the broker accepts a connection, every migration
  of this code is applied, and the beat schedule is alive (a periodic job started within
  ``PORTAL_READYZ_BEAT_MAX_AGE_SECONDS``). 200 when all hold, else 503; the JSON names each check.
"""

from __future__ import annotations

import time
from datetime import timedelta

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Max
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

# Once every migration of this code is applied it stays so for the life of the process (the code
# cannot change under it), so the migration graph is loaded only until the first success.
_migrations_applied = False


def _timed(check) -> dict:
    started = time.monotonic()
    try:
        result = check() or {}
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; the class name is reported
        return {"ok": False, "error": type(exc).__name__}
    result.setdefault("ok", True)
    result["ms"] = round((time.monotonic() - started) * 1000, 1)
    return result


def _database() -> dict:
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {}


def _broker() -> dict:
    from kombu import Connection

    with Connection(
        settings.CELERY_BROKER_URL, connect_timeout=2, transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS
    ) as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
    return {}


def _migrations() -> dict:
    global _migrations_applied
    if _migrations_applied:
        return {}
    executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if pending:
        return {"ok": False, "pending": len(pending), "error": "unapplied migrations: run manage.py migrate"}
    _migrations_applied = True
    return {}


def _beat() -> dict:
    from compliance.monitoring.models import JobHeartbeat

    max_age = timedelta(seconds=settings.PORTAL_READYZ_BEAT_MAX_AGE_SECONDS)
    last = JobHeartbeat.objects.aggregate(last=Max("last_started_at"))["last"]
    age = None if last is None else (timezone.now() - last).total_seconds()
    result = {"last_job_started_seconds_ago": None if age is None else round(age, 1)}
    if not settings.PORTAL_READYZ_REQUIRE_BEAT:
        result["required"] = False
    elif age is None or age > max_age.total_seconds():
        result.update(ok=False, error=f"no periodic job started in the last {max_age.total_seconds():g} s: "
                                      "is celery beat (and a worker) running?")
    return result


@never_cache
@require_GET
def healthz(request):
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request):
    checks = {"database": _timed(_database), "broker": _timed(_broker)}
    if checks["database"]["ok"]:
        checks["migrations"] = _timed(_migrations)
        checks["beat"] = _timed(_beat)
    else:
        checks["migrations"] = checks["beat"] = {"ok": False, "error": "database unavailable"}
    ok = all(check["ok"] for check in checks.values())
    return JsonResponse({"status": "ready" if ok else "unavailable", "checks": checks}, status=200 if ok else 503)
