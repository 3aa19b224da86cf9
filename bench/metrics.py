"""Benchmark: the delivery (DORA and approval) metrics on 1,000,000 requests, against COPY.

Not part of the test run. Needs a local PostgreSQL (loopback only) and writes only to its own
database (default ``evidence_bench_metrics``, created and migrated if missing).

    .venv/bin/python bench/metrics.py                    # load 1,000,000 requests once (COPY), then 5 runs each
    .venv/bin/python bench/metrics.py --rows 100000 --runs 3
    .venv/bin/python bench/metrics.py --reload           # truncate and load again

Data: 100 environments, one request every 30 seconds for a year (80 % deployed, 5 % failed, 10 %
rejected, 5 % approved and waiting; 1 % of the successes flagged as failed changes and 1 % followed by
a rollback), two decisions per request, half the change sets naming their
first commit; loaded with ``COPY ... FROM STDIN``. Each run measures, in the same process:

- ``dora 30d`` / ``dora 366d``: ``dora_metrics`` for the last 30 days / the whole year (all 100 environments);
- ``approvers 30d``: ``approver_waits`` for the last 30 days (joins the decisions);
- ``copy 30d`` / ``copy 366d``: ``COPY (SELECT environment_id, status, finished_at, created_at FROM
  requests WHERE finished in the period) TO STDOUT``: reading the same rows out, no aggregation;
- ``trivial``: ``SELECT 1`` (the round-trip floor).

Prints the medians and each metric's ratio against the COPY of its period.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from pgdb import ensure_database  # bench/ is the script's directory, first on sys.path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/evidence_bench_metrics"
START = datetime(2025, 1, 1, tzinfo=UTC)
STEP = timedelta(seconds=30)


def _setup_django(database_url: str) -> None:
    host = urlsplit(database_url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"refusing to benchmark against a non-loopback database host {host!r}")
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    os.environ.setdefault("DJANGO_SECRET_KEY", "benchmark-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz")
    # Development keys for the audit chain (a throw-away database); the measured code runs a handful of
    # queries, so DEBUG's query log costs nothing here.
    os.environ.setdefault("DJANGO_DEBUG", "1")
    os.environ.setdefault("PORTAL_VAR_DIR", str(ROOT / "var" / "bench"))
    os.environ.setdefault("PORTAL_LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


REQUEST_COLUMNS = (
    "environment_id", "sha", "ref", "requester_id", "requester_login", "source", "source_url", "external_ids",
    "title", "change_authors", "change_set", "first_commit_at", "checks", "check_provenance", "policy_snapshot",
    "ticket",
    "risk_level", "impact", "rollback_plan", "is_emergency", "emergency_justification", "during_freeze",
    "flagged_for_review", "status", "status_reason", "created_at", "updated_at", "expires_at", "decided_at",
    "approval_expires_at", "finished_at", "failed_change_at", "rolled_back_by_id",
)
APPROVAL_COLUMNS = ("request_id", "approver_id", "decision", "comment", "checklist", "policy_version",
                    "policy_sha256", "policy_acknowledged", "created_at", "ip_address", "authentication_method")


def load(rows: int, reload: bool) -> None:
    """Migrate, then COPY ``rows`` requests and two decisions each."""
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
        cursor.execute("SET portal.audit_maintenance = on")  # the bench's own throw-away database
        cursor.execute("TRUNCATE deployments_approval, deployments_requestevent, deployments_refusal, "
                       "deployments_execution, deployments_deploymentrequest RESTART IDENTITY CASCADE")
    with transaction.atomic():
        User.objects.bulk_create([User(username=f"bench-eng-{i}", password="!") for i in range(200)]
                                 + [User(username=f"bench-appr-{i}", password="!") for i in range(40)],
                                 ignore_conflicts=True)
        Service.objects.bulk_create([Service(name=f"bench-svc-{i}", repository=f"acme/bench-svc-{i}")
                                     for i in range(50)], ignore_conflicts=True)
        services = list(Service.objects.filter(name__startswith="bench-svc-"))
        Environment.objects.bulk_create([Environment(service=s, name=n, tier="staging") for s in services
                                         for n in ("staging", "production")], ignore_conflicts=True)
    engineers = list(User.objects.filter(username__startswith="bench-eng-").values_list("id", flat=True))
    approvers = list(User.objects.filter(username__startswith="bench-appr-").values_list("id", flat=True))
    environments = list(Environment.objects.filter(service__name__startswith="bench-svc-").values_list("id", flat=True))
    rng = random.Random(17)
    raw = connection.connection
    with raw.cursor() as cursor:
        cursor.execute("SET synchronous_commit = off")
        with cursor.copy(f"COPY deployments_deploymentrequest ({', '.join(REQUEST_COLUMNS)}) FROM STDIN") as copy:
            for i in range(rows):
                created = START + i * STEP
                roll = rng.random()
                status = ("rejected" if roll < 0.10 else "approved" if roll < 0.15 else "failed" if roll < 0.20
                          else "deployed")
                wait = timedelta(minutes=rng.randint(5, 600))
                decided = created + wait
                approved = status != "rejected"
                finished = decided + timedelta(minutes=rng.randint(5, 60)) if status in ("deployed", "failed") else None
                first_commit = created - timedelta(hours=rng.randint(1, 96)) if i % 2 else None
                change_set = json.dumps({"first_commit_at": first_commit.isoformat()} if first_commit else {})
                # 1 % of the successes flagged as failed changes, 1 % rolled back by the next request (id i + 2;
                # the foreign key is checked at commit)
                bad = rng.random() if status == "deployed" else 1.0
                flagged_at = finished + timedelta(hours=1) if bad < 0.01 else None
                rolled_back_by = i + 2 if 0.01 <= bad < 0.02 and i + 1 < rows else None
                copy.write_row((
                    environments[i % len(environments)], f"{i:040x}", "refs/heads/main",
                    engineers[i % len(engineers)], "", "github", "", "{}", f"Change {i}", "[]", change_set,
                    first_commit, "{}",
                    "{}", '{"version": 3, "required_approvals": 2}', f"PAY-{i}", "low", "", "", False, "", False,
                    False, status, "", created, created, created + timedelta(days=1), decided,
                    decided + timedelta(hours=2) if approved else None, finished, flagged_at, rolled_back_by,
                ))
        print(f"requests copied in {time.perf_counter() - started:.1f}s", flush=True)
        with cursor.copy(f"COPY deployments_approval ({', '.join(APPROVAL_COLUMNS)}) FROM STDIN") as copy:
            for i in range(rows):
                created = START + i * STEP
                for k in range(2):
                    copy.write_row((i + 1, approvers[(i + k) % len(approvers)], "approve", "", "{}", 3, "", True,
                                    created + timedelta(minutes=5 + 30 * k + (i % 300)), None, "password"))
        print(f"approvals copied at {time.perf_counter() - started:.1f}s", flush=True)
        cursor.execute("ANALYZE deployments_deploymentrequest")
        cursor.execute("ANALYZE deployments_approval")
    raw.commit()
    print(f"loaded {rows:,} requests in {time.perf_counter() - started:.1f}s", flush=True)


def measure(rows: int, runs: int) -> None:
    from django.db import connection

    from deployments.metrics.queries import Period, approver_waits, dora_metrics

    last = (START + rows * STEP).date()
    month = Period(last - timedelta(days=29), last)
    year = Period(max(START.date(), last - timedelta(days=365)), last)

    def copy_rows(period) -> int:
        size = 0
        with connection.connection.cursor() as cursor:
            sql = ("COPY (SELECT environment_id, status, finished_at, created_at FROM deployments_deploymentrequest "
                   "WHERE status IN ('deployed', 'failed') AND finished_at >= %s AND finished_at < %s) TO STDOUT")
            with cursor.copy(sql, (period.start, period.end)) as copy:
                for block in copy:
                    size += len(block)
        return size

    def trivial() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()

    cases = {
        "dora 30d": lambda: dora_metrics(month),
        "dora 366d": lambda: dora_metrics(year),
        "approvers 30d": lambda: approver_waits(month),
        "copy 30d": lambda: copy_rows(month),
        "copy 366d": lambda: copy_rows(year),
        "trivial": trivial,
    }
    timings: dict[str, list[float]] = {name: [] for name in cases}
    for run in range(runs):
        for name, case in cases.items():
            started = time.perf_counter()
            case()
            timings[name].append(time.perf_counter() - started)
        print(f"run {run + 1}: " + ", ".join(f"{n} {t[-1] * 1000:.0f} ms" for n, t in timings.items()), flush=True)
    medians = {name: statistics.median(values) for name, values in timings.items()}
    rows_month = len(dora_metrics(month))
    print(f"\n{rows:,} requests, {rows_month} environments; medians of {runs} runs:")
    for name, value in medians.items():
        baseline = medians["copy 366d" if "366d" in name else "copy 30d"]
        ratio = "" if name.startswith("copy") or name == "trivial" else f"  ({value / baseline:.1f}x COPY of the rows)"
        print(f"  {name:14s} {value * 1000:8.1f} ms{ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--reload", action="store_true")
    args = parser.parse_args()
    ensure_database(args.database_url)
    _setup_django(args.database_url)
    load(args.rows, args.reload)
    measure(args.rows, args.runs)


if __name__ == "__main__":
    main()
