"""Benchmark: stream the deployment authorization log CSV for 1,000,000 requests, against COPY.

Not part of the test run. Needs a local PostgreSQL (loopback only) and writes only to its own
database (default ``portal_bench_reports``, created and migrated if missing).

    .venv/bin/python bench/csv_export.py                 # load 1,000,000 requests once, then 3 runs each
    .venv/bin/python bench/csv_export.py --rows 100000 --runs 5
    .venv/bin/python bench/csv_export.py --reload        # drop and reload the data first

Each measurement runs in a fresh subprocess, so its peak RSS (``VmHWM``) is that export alone:
- ``export``: ``compliance.reports.exporters.csv_bytes`` for the registered report, consumed fully —
  the same generator the ``/reports/<slug>.csv`` view streams (header, neutralised cells, UTF-8).
- ``copy``: PostgreSQL's ``COPY (<the report's own SQL>) TO STDOUT WITH CSV HEADER``, consumed fully
  by psycopg, i.e. the database's cost for the very same query with no Python per row.
Prints the medians and the ratio; targets: peak RSS <= 150 MB, export time <= 3x COPY.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from pgdb import ensure_database  # bench/ is the script's directory, first on sys.path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/portal_bench_reports"
REPORT = "deployment-authorization-log"


def _setup_django(database_url: str) -> None:
    host = urlsplit(database_url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"refusing to benchmark against a non-loopback database host {host!r}")
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    os.environ.setdefault("DJANGO_SECRET_KEY", "benchmark-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz")
    os.environ.setdefault("DJANGO_DEBUG", "0")  # DEBUG would keep every query in memory
    os.environ.setdefault("PORTAL_VAR_DIR", str(ROOT / "var" / "bench"))
    os.environ.setdefault("PORTAL_LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def _peak_rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# --- loading --------------------------------------------------------------------------------------


def load(rows: int, reload: bool) -> None:
    """Migrate, then load ``rows`` requests (2 decisions each, an execution for 4 in 5) in SQL."""
    from django.core.management import call_command
    from django.db import connection, transaction

    from compliance.models import User
    from deployments.models import DeploymentRequest, Environment, Service

    call_command("migrate", verbosity=0)
    existing = DeploymentRequest.objects.count()
    if existing == rows and not reload:
        print(f"data already loaded: {existing:,} requests", flush=True)
        return
    started = time.perf_counter()
    with connection.cursor() as cursor:
        # The bench's own throw-away database: the append-only triggers let maintenance sessions through.
        cursor.execute("SET portal.audit_maintenance = on")
        cursor.execute(
            "TRUNCATE deployments_execution, deployments_approval, deployments_requestevent, "
            "deployments_refusal, deployments_deploymentrequest RESTART IDENTITY CASCADE"
        )
    with transaction.atomic():
        people = [User(username=f"bench-eng-{i}", password="!") for i in range(200)]
        people += [User(username=f"bench-appr-{i}", password="!") for i in range(40)]
        User.objects.bulk_create(people, ignore_conflicts=True)
        Service.objects.bulk_create(
            [Service(name=f"bench-svc-{i}", repository=f"acme/bench-svc-{i}") for i in range(50)],
            ignore_conflicts=True,
        )
        services = list(Service.objects.filter(name__startswith="bench-svc-"))
        Environment.objects.bulk_create(
            [Environment(service=s, name=n, tier="staging") for s in services for n in ("staging", "production")],
            ignore_conflicts=True,
        )
    people_ids = User.objects.order_by("id").values_list("id", flat=True)
    engineers = list(people_ids.filter(username__startswith="bench-eng-"))
    approvers = list(people_ids.filter(username__startswith="bench-appr-"))
    environments = list(Environment.objects.filter(service__name__startswith="bench-svc-").order_by("id")
                        .values_list("id", flat=True))
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = off")
        cursor.execute(
            """
            INSERT INTO deployments_deploymentrequest (
                environment_id, sha, ref, requester_id, requester_login, source, source_url, external_ids, title,
                change_authors, change_set, checks, check_provenance, policy_snapshot, is_emergency,
                emergency_justification,
                during_freeze, flagged_for_review, status, status_reason, created_at, updated_at, expires_at,
                decided_at, approval_expires_at, finished_at, superseded_by_id)
            SELECT (%(envs)s::bigint[])[1 + i %% cardinality(%(envs)s::bigint[])],
                   md5(i::text) || substr(md5((i + 1)::text), 1, 8),
                   CASE WHEN i %% 5 = 0 THEN 'refs/heads/release/2026.' || (i %% 12) ELSE 'refs/heads/main' END,
                   (%(engs)s::bigint[])[1 + i %% cardinality(%(engs)s::bigint[])],
                   'bench-eng-' || (i %% 200), 'github', '', '{}'::jsonb, 'Change ' || i,
                   jsonb_build_array('bench-eng-' || (i %% 200)),
                   jsonb_build_object('commits', jsonb_build_array(
                       jsonb_build_object('sha', md5((i * 7)::text)), jsonb_build_object('sha', md5((i * 11)::text)))),
                   '{"unit": "success", "lint": "success", "integration": "success"}'::jsonb,
                   '{}'::jsonb,
                   '{"version": 3, "required_approvals": 2}'::jsonb,
                   i %% 997 = 0, CASE WHEN i %% 997 = 0 THEN 'Hotfix for an outage.' ELSE '' END,
                   i %% 997 = 0, i %% 997 = 0,
                   CASE WHEN i %% 10 = 0 THEN 'rejected' WHEN i %% 5 = 0 THEN 'approved' ELSE 'deployed' END,
                   '', ts, ts, ts + interval '1 day', ts + interval '20 minutes', ts + interval '2 hours',
                   CASE WHEN i %% 5 <> 0 THEN ts + interval '40 minutes' END, NULL
            FROM (SELECT i, timestamptz '2025-01-01' + (i * interval '30 seconds') AS ts
                  FROM generate_series(1, %(rows)s) AS i) AS g
            """,
            {"envs": environments, "engs": engineers, "rows": rows},
        )
        print(f"requests loaded in {time.perf_counter() - started:.1f}s", flush=True)
        cursor.execute(
            """
            INSERT INTO deployments_approval (request_id, approver_id, decision, comment, checklist, policy_version,
                                              created_at, ip_address)
            SELECT r.id, (%(apprs)s::bigint[])[1 + (r.id + k) %% cardinality(%(apprs)s::bigint[])],
                   CASE WHEN r.status = 'rejected' AND k = 1 THEN 'reject' ELSE 'approve' END,
                   CASE WHEN k = 0 THEN 'Reviewed the change set and its impact.'
                        WHEN r.status = 'rejected' THEN 'Breaks the public API.' ELSE '' END,
                   '{}'::jsonb, 3, r.created_at + (k + 1) * interval '5 minutes', '10.0.0.1'
            FROM deployments_deploymentrequest r CROSS JOIN generate_series(0, 1) AS k
            """,
            {"apprs": approvers},
        )
        print(f"approvals loaded at {time.perf_counter() - started:.1f}s", flush=True)
        cursor.execute(
            """
            INSERT INTO deployments_execution (environment_id, request_id, sha, status, external_id, url,
                                               reported_by_id, authorized, flag_reason, created_at, updated_at)
            SELECT r.environment_id, r.id, r.sha, 'success', 'run-' || r.id, '', NULL, r.id % 1000 <> 0,
                   CASE WHEN r.id % 1000 = 0 THEN 'The approval had gone stale before the deployment started.'
                        ELSE '' END, r.created_at + interval '30 minutes', r.created_at + interval '40 minutes'
            FROM deployments_deploymentrequest r WHERE r.status = 'deployed'
            """
        )
        print(f"executions loaded at {time.perf_counter() - started:.1f}s", flush=True)
        cursor.execute("ANALYZE")
    print(f"loaded {rows:,} requests in {time.perf_counter() - started:.1f}s", flush=True)


# --- measurements (each in a fresh process) -------------------------------------------------------


def measure_export() -> dict:
    from compliance.reports import exporters, registry
    from compliance.reports.registry import Filters

    report = registry.get(REPORT)
    baseline = _rss_kb()
    started = time.perf_counter()
    size = lines = 0
    for chunk in exporters.csv_bytes(report, Filters()):
        size += len(chunk)
        lines += chunk.count(b"\n")
    return {"seconds": time.perf_counter() - started, "bytes": size, "lines": lines,
            "peak_rss_kb": _peak_rss_kb(), "baseline_rss_kb": baseline}


def report_sql() -> str:
    import psycopg
    from django.db import connection

    from compliance.reports.registry import Filters
    from deployments.reports.definitions import authorization_log_queryset

    sql, params = authorization_log_queryset(Filters()).query.sql_with_params()
    connection.ensure_connection()
    return psycopg.ClientCursor(connection.connection).mogrify(sql, params)


def measure_copy() -> dict:
    from django.db import connection

    sql = report_sql()
    baseline = _rss_kb()
    started = time.perf_counter()
    size = lines = 0
    with connection.cursor() as cursor:
        raw = cursor.cursor
        with raw.copy(f"COPY ({sql}) TO STDOUT WITH CSV HEADER") as copy:
            for block in copy:
                size += len(block)
                lines += bytes(block).count(b"\n")
    return {"seconds": time.perf_counter() - started, "bytes": size, "lines": lines,
            "peak_rss_kb": _peak_rss_kb(), "baseline_rss_kb": baseline}


def _run(kind: str, database_url: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--database-url", database_url, "--measure", kind],
        check=True, capture_output=True, text=True, cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--reload", action="store_true")
    parser.add_argument("--measure", choices=("export", "copy"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        _setup_django(args.database_url)
        result = measure_export() if args.measure == "export" else measure_copy()
        print(json.dumps(result))
        return
    if not 1 <= args.rows <= 5_000_000 or not 1 <= args.runs <= 10:
        raise SystemExit("--rows must be 1..5,000,000 and --runs 1..10")
    ensure_database(args.database_url)
    _setup_django(args.database_url)
    load(args.rows, args.reload)
    print("query:", report_sql()[:200].replace("\n", " "), "...", flush=True)
    exports, copies = [], []
    for run in range(1, args.runs + 1):
        copies.append(_run("copy", args.database_url))
        exports.append(_run("export", args.database_url))
        print(f"run {run}: COPY {copies[-1]['seconds']:.2f}s ({copies[-1]['lines'] - 1:,} rows), "
              f"export {exports[-1]['seconds']:.2f}s ({exports[-1]['lines'] - 1:,} rows, "
              f"{exports[-1]['bytes'] / 1e6:.0f} MB), export peak RSS {exports[-1]['peak_rss_kb'] / 1024:.0f} MB",
              flush=True)
    copy_s = statistics.median(r["seconds"] for r in copies)
    export_s = statistics.median(r["seconds"] for r in exports)
    peak_mb = statistics.median(r["peak_rss_kb"] for r in exports) / 1024
    baseline_mb = statistics.median(r["baseline_rss_kb"] for r in exports) / 1024
    summary = {
        "rows": exports[0]["lines"] - 1,
        "runs": args.runs,
        "copy_median_s": round(copy_s, 2),
        "export_median_s": round(export_s, 2),
        "ratio": round(export_s / copy_s, 2),
        "export_peak_rss_mb": round(peak_mb, 1),
        "export_rss_before_mb": round(baseline_mb, 1),
        "targets_met": {"peak_rss_le_150mb": peak_mb <= 150, "time_le_3x_copy": export_s <= 3 * copy_s},
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
