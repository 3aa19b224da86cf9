"""Benchmark of the dashboard's server time on a large PostgreSQL database (not part of the test run).

Seeds (once) 100,000 deployment requests across 500 environments with their approvals and timeline
events, then measures the server time of the approver queue, a request page and the recent-decisions
page through the Django test client (the whole middleware, view, SQL and template stack, no network),
next to a trivial page (the sign-in form) measured in the same run, and prints p50/p95 of the wall
time (what a person waits for, SQL included) and of this process's CPU time (Python only: less
sensitive to other load on the machine), with the number of SQL queries per page.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/portal_bench .venv/bin/python bench/dashboard.py

Options: --requests N (100000), --environments N (500), --samples N (200), --reseed.
The database is migrated first; seeding uses bulk_create in batches and is skipped when already done.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
os.environ.setdefault("DJANGO_SECRET_KEY", "benchmark-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz")
os.environ.setdefault("DJANGO_SECURE_SSL_REDIRECT", "0")
os.environ.setdefault("DJANGO_SECURE_COOKIES", "0")
os.environ.setdefault("PORTAL_LOG_LEVEL", "WARNING")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.models import Group, Permission  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

from compliance.people.roles import Role  # noqa: E402
from deployments.choices import Decision, EventKind, RequestStatus, Tier  # noqa: E402
from deployments.gate.policy import PolicyRules  # noqa: E402
from deployments.models import (  # noqa: E402
    Approval,
    ApprovalPolicy,
    DeploymentRequest,
    Environment,
    EnvironmentGroupObjectPermission,
    RequestEvent,
    Service,
)

PREFIX = "bench-"
BATCH = 5000
CHECKLIST = ["Impact on production assessed", "Meets coding standards", "Meets security requirements",
             "Meets business rules"]
# Status mix of the seeded history; the newest request of most environments is open.
HISTORY = [(RequestStatus.DEPLOYED, 60), (RequestStatus.SUPERSEDED, 20), (RequestStatus.REJECTED, 6),
           (RequestStatus.EXPIRED, 6), (RequestStatus.CANCELLED, 4), (RequestStatus.FAILED, 4)]


def sha(n: int) -> str:
    return hashlib.sha1(f"bench-{n}".encode()).hexdigest()


def seeded(environments: int) -> bool:
    return Environment.objects.filter(service__name__startswith=PREFIX).count() >= environments


def wipe() -> None:
    with connection.cursor() as cursor:
        # The bench's own throw-away database: the append-only triggers let maintenance sessions through.
        cursor.execute("SET portal.audit_maintenance = on")
        cursor.execute(
            "TRUNCATE deployments_requestevent, deployments_approval, deployments_notificationlog, "
            "deployments_refusal, deployments_execution, deployments_deploymentrequest CASCADE"
        )
    EnvironmentGroupObjectPermission.objects.filter(content_object__service__name__startswith=PREFIX).delete()
    ApprovalPolicy.objects.filter(environment__service__name__startswith=PREFIX).delete()
    Environment.objects.filter(service__name__startswith=PREFIX).delete()
    Service.objects.filter(name__startswith=PREFIX).delete()


def seed(*, requests: int, environments: int) -> None:
    started = time.monotonic()
    rng = random.Random(42)
    user_model = get_user_model()
    approver_group = Group.objects.get(name=str(Role.APPROVER))
    engineer_group = Group.objects.get(name=str(Role.ENGINEER))
    bench_approvers, _ = Group.objects.get_or_create(name="bench-approvers")
    bench_engineers, _ = Group.objects.get_or_create(name="bench-engineers")
    people = {}
    for name, groups in [("bench-approver", [approver_group, bench_approvers]),
                         *[(f"bench-approver{i}", [approver_group, bench_approvers]) for i in range(9)],
                         *[(f"bench-engineer{i}", [engineer_group, bench_engineers]) for i in range(20)]]:
        user, _ = user_model.objects.get_or_create(username=name, defaults={"email": f"{name}@example.com"})
        user.groups.add(*groups)
        people[name] = user
    engineers = [people[f"bench-engineer{i}"] for i in range(20)]
    others = [people[f"bench-approver{i}"] for i in range(9)]

    services_per = 5
    services = Service.objects.bulk_create(
        Service(name=f"{PREFIX}{i:03d}", repository=f"acme/{PREFIX}{i:03d}")
        for i in range(environments // services_per)
    )
    envs = Environment.objects.bulk_create(
        Environment(service=service, name=name, tier=Tier.PRODUCTION if name == "production" else Tier.STAGING)
        for service in services for name in ("dev-eu", "staging", "staging-us", "canary", "production")
    )
    ApprovalPolicy.objects.bulk_create(
        ApprovalPolicy(environment=env, required_approvals=2 if env.tier == Tier.PRODUCTION else 1,
                       required_checks=["unit", "lint"], impact_checklist=CHECKLIST)
        for env in envs
    )
    approve = Permission.objects.get(codename="approve_deployment")
    request_perm = Permission.objects.get(codename="request_deployment")
    EnvironmentGroupObjectPermission.objects.bulk_create(
        [EnvironmentGroupObjectPermission(group=bench_approvers, permission=approve, content_object=env)
         for env in envs]
        + [EnvironmentGroupObjectPermission(group=bench_engineers, permission=request_perm, content_object=env)
           for env in envs]
    )
    print(f"  {len(envs)} environments, permissions: {time.monotonic() - started:.1f}s", flush=True)

    now = timezone.now()
    per_env = requests // len(envs)
    statuses, weights = zip(*HISTORY, strict=True)
    n = 0
    pending: list[DeploymentRequest] = []

    def flush(batch):
        created = DeploymentRequest.objects.bulk_create(batch)
        approvals, events = [], []
        for req in created:
            events.append(RequestEvent(request=req, kind=EventKind.SUBMITTED, actor=req.requester,
                                       message=f"Requested {req.sha[:12]}"))
            events.append(RequestEvent(request=req, kind=EventKind.AWAITING_APPROVAL, actor=req.requester))
            if req.status in (RequestStatus.DEPLOYED, RequestStatus.FAILED, RequestStatus.AWAITING_APPROVAL):
                count = 1 if req.status == RequestStatus.AWAITING_APPROVAL else 2
                for approver in rng.sample(others, count):
                    approvals.append(Approval(request=req, approver=approver, decision=Decision.APPROVE,
                                              comment="Reviewed", checklist=dict.fromkeys(CHECKLIST, True)))
            elif req.status == RequestStatus.REJECTED:
                approvals.append(Approval(request=req, approver=rng.choice(others), decision=Decision.REJECT,
                                          comment="Not now"))
            if req.status not in (RequestStatus.AWAITING_APPROVAL, RequestStatus.PENDING_CHECKS):
                events.append(RequestEvent(request=req, kind=str(req.status), actor=None))
        Approval.objects.bulk_create(approvals)
        RequestEvent.objects.bulk_create(events)

    for env in envs:
        snapshot = PolicyRules(required_approvals=2 if env.tier == Tier.PRODUCTION else 1,
                               required_checks=("unit", "lint"), impact_checklist=tuple(CHECKLIST)).snapshot()
        for k in range(per_env):
            newest = k == per_env - 1
            age = timedelta(minutes=(per_env - k) * 90 + rng.randint(0, 60))
            if newest:
                status = rng.choices([RequestStatus.AWAITING_APPROVAL, RequestStatus.PENDING_CHECKS,
                                      RequestStatus.DEPLOYED], [70, 10, 20])[0]
            else:
                status = rng.choices(statuses, weights)[0]
            requester = rng.choice(engineers)
            pending.append(DeploymentRequest(
                environment=env, sha=sha(n), ref=rng.choice(["refs/heads/main", "refs/heads/release/2026.11"]),
                requester=requester, requester_login=requester.username, source="github",
                source_url=f"https://ci.example/runs/{n}", title=f"Change {n}",
                change_authors=[requester.username],
                change_set={"base": sha(n - 1), "head": sha(n), "files_changed": rng.randint(1, 40),
                            "additions": rng.randint(1, 900), "deletions": rng.randint(0, 300),
                            "commits": [{"sha": sha(n * 10 + c), "author": requester.username,
                                         "message": f"Commit {c} of change {n}"} for c in range(3)]},
                checks={"unit": "success", "lint": "success" if status != RequestStatus.PENDING_CHECKS else "pending"},
                policy_snapshot=snapshot, status=status, expires_at=now - age + timedelta(days=1),
            ))
            n += 1
            if len(pending) >= BATCH:
                flush(pending)
                pending = []
                print(f"  {n} requests: {time.monotonic() - started:.1f}s", flush=True)
    if pending:
        flush(pending)
    # created_at is auto_now_add: spread the history over time in one UPDATE.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE deployments_deploymentrequest SET created_at = now() - (id_max - id) * interval '90 seconds' "
            "FROM (SELECT max(id) AS id_max FROM deployments_deploymentrequest) m"
        )
        cursor.execute("ANALYZE")
    print(f"  seeded {n} requests in {time.monotonic() - started:.1f}s", flush=True)


def measure(client: Client, url: str, samples: int) -> dict:
    for _ in range(10):  # warm-up: connections, template cache
        assert client.get(url).status_code == 200, url
    timings, cpu = [], []
    for _ in range(samples):
        started, started_cpu = time.perf_counter(), time.process_time()
        response = client.get(url)
        timings.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
        assert response.status_code == 200
    with CaptureQueriesContext(connection) as queries:
        client.get(url)
    cuts = statistics.quantiles(timings, n=100)
    return {"p50": statistics.median(timings), "p95": cuts[94], "max": max(timings), "queries": len(queries),
            "cpu50": statistics.median(cpu), "cpu95": statistics.quantiles(cpu, n=100)[94]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--environments", type=int, default=500)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--reseed", action="store_true")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        print("warning: this benchmark is meant for PostgreSQL (set DATABASE_URL=postgres://...)", file=sys.stderr)
    else:
        from pgdb import ensure_database  # bench/ is the script's directory, first on sys.path

        ensure_database(os.environ["DATABASE_URL"])
    call_command("migrate", verbosity=0)
    if args.reseed:
        wipe()
    if not seeded(args.environments):
        print(f"Seeding {args.requests} requests across {args.environments} environments...", flush=True)
        with transaction.atomic():
            seed(requests=args.requests, environments=args.environments)
    total = DeploymentRequest.objects.count()
    user = get_user_model().objects.get(username="bench-approver")
    client = Client()
    client.force_login(user)
    awaiting = (DeploymentRequest.objects.filter(status=RequestStatus.AWAITING_APPROVAL)
                .order_by("created_at").first())
    pages = {
        "trivial page (sign-in form)": "/accounts/login/",
        "approver queue (page 1)": "/queue/",
        "approver queue (search)": "/queue/?q=release",
        "request page": f"/requests/{awaiting.pk}/",
        "recent decisions": "/decisions/",
    }
    print(f"{total} requests, {Environment.objects.count()} environments, {Approval.objects.count()} approvals, "
          f"{RequestEvent.objects.count()} events; {args.samples} samples per page, {connection.vendor}")
    print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    print(f"{'page':32} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'queries':>8} {'cpu p50':>8} {'cpu p95':>8}")
    for label, url in pages.items():
        if label.startswith("trivial"):
            result = measure(Client(), url, args.samples)
        else:
            result = measure(client, url, args.samples)
        print(f"{label:32} {result['p50']:8.1f} {result['p95']:8.1f} {result['max']:8.1f} {result['queries']:8d} "
              f"{result['cpu50']:8.1f} {result['cpu95']:8.1f}")
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
