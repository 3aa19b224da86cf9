#!/usr/bin/env python3
"""The larger fault run: hundreds of decisions through a real Celery worker and beat on a private
redis-server, to a CI receiver on loopback that injects faults (tests/delivery/faultkit.py), with
``kill -9`` of the worker during attempts and broker restarts. Prints faults injected, decisions
lost / delivered without receipt / duplicated, and p50/p99 time from decision to delivery without
faults (a baseline measured in the same run) and with them:

    .venv/bin/python bench/faults.py [--database postgres://postgres@127.0.0.1:5432/faults_bench]
        [--baseline 100] [--decisions 300] [--kills 6] [--restarts 2] [--seed 15]

The database (the benchmark's own) is dropped, created and migrated at each run; the redis-server
listens on a free loopback port and is stopped at the end. Not part of the test run. Every wait is
bounded; the run takes about 5 minutes.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.delivery.faultkit import (  # noqa: E402  (the repository root is put on the path first)
    FAULTS,
    CeleryProcess,
    FaultyReceiver,
    RedisServer,
    check_outcome,
    percentiles,
    process_env,
)

SECRET = "whsec-bench-faults-0123456789"


def recreate_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(("postgresql", parts.netloc, "/postgres", "", ""))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.25)
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default="postgres://postgres@127.0.0.1:5432/faults_bench")
    parser.add_argument("--baseline", type=int, default=100, help="decisions delivered without faults first")
    parser.add_argument("--decisions", type=int, default=300, help="decisions made under faults")
    parser.add_argument("--kills", type=int, default=6, help="worker kill -9 during held attempts")
    parser.add_argument("--restarts", type=int, default=2, help="broker restarts")
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    work = Path(tempfile.mkdtemp(prefix="faults-bench-"))
    recreate_database(args.database)
    redis = RedisServer(work / "redis")
    redis.start()
    os.environ.update({
        "DJANGO_SETTINGS_MODULE": "portal.settings", "DJANGO_DEBUG": "1", "DATABASE_URL": args.database,
        "CELERY_BROKER_URL": redis.url, "CELERY_TASK_ALWAYS_EAGER": "0", "PORTAL_VAR_DIR": str(work / "var"),
        "PORTAL_OUTBOUND_ALLOWED_HOSTS": "127.0.0.1",
    })
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from deployments.choices import DeliveryStatus
    from deployments.delivery.providers import webhook
    from deployments.delivery.secrets import encrypt_secret
    from deployments.gate import services
    from deployments.models import DecisionDelivery, WebhookEndpoint
    from tests import factories

    call_command("migrate", verbosity=0)
    environment = factories.make_environment(name="staging")
    requester = factories.engineer(environment, username="rita")
    approver = factories.approver(environment, username="approver0")
    receiver = FaultyReceiver(SECRET, webhook.verify)
    WebhookEndpoint.objects.create(environment=environment, url=receiver.url, secret_ciphertext=encrypt_secret(SECRET))

    env = process_env(database_url=args.database, broker_url=redis.url, var_dir=work / "var",
                      secret_key=settings.SECRET_KEY)
    worker = CeleryProcess("worker", env, work / "worker.log", concurrency=8)
    beat = CeleryProcess("beat", env, work / "beat.log")
    decided: dict[str, float] = {}
    requests_by_sha: dict[str, int] = {}
    outage_calls: list[float] = []

    def decide(plan: list[str]) -> float:
        sha = factories.sha()
        receiver.plans[sha] = plan
        request = services.submit_request(actor=requester, environment=environment, sha=sha, ref="refs/heads/main")
        started = time.monotonic()
        factories.approve(request, approver)
        decided[sha] = time.monotonic()
        requests_by_sha[sha] = request.pk
        return decided[sha] - started

    def settled() -> bool:
        return not DecisionDelivery.objects.exclude(status=DeliveryStatus.DELIVERED).exists()

    started_run = time.monotonic()
    worker.start()
    beat.start()
    recovery: list[float] = []
    kills = in_flight = 0
    try:
        decide([])  # warm-up: the worker and beat are up once this is delivered (not counted below)
        wait_until(settled, 120)
        warm_up = set(decided)
        for _ in range(args.baseline):
            decide([])
        wait_until(settled, 120)
        baseline = set(decided) - warm_up

        batches = max(args.kills, args.restarts, 1)
        per_batch = max(1, args.decisions // batches)
        restart_batches = set(rng.sample(range(batches), min(args.restarts, batches)))
        for batch in range(batches):
            kill = batch < args.kills
            for _ in range(per_batch - (2 if kill else 0)):
                plan = [rng.choice(FAULTS) for _ in range(rng.choice((0, 1, 1, 2, 3)))]
                decide(plan)
            holds_before = receiver.holding
            if kill:  # two attempts held open by the receiver, then the worker killed during them
                for _ in range(2):
                    decide(["hold"])
            if kill and wait_until(lambda: receiver.holding >= holds_before + 2, 60):  # noqa: B023
                time.sleep(0.3)
                killed_at = time.monotonic()
                held = [a.sha for a in receiver.arrivals if a.fault == "hold" and a.at > killed_at - 4]
                worker.kill()
                kills += 1
                wait_until(lambda: all(receiver.arrival_after(s, killed_at) for s in held), 60)  # noqa: B023
                recovery += [receiver.arrival_after(s, killed_at) - killed_at for s in held
                             if receiver.arrival_after(s, killed_at)]
                in_flight += len(held)
            if batch in restart_batches:
                redis.stop()
                outage_calls += [decide([]) for _ in range(10)]
                time.sleep(3)
                redis.start()
        delivered_all = wait_until(settled, 240)
        rows = list(DecisionDelivery.objects.prefetch_related("attempt_log"))
    finally:
        worker.stop()
        beat.stop()
        redis.stop()
        receiver.close()

    verdict = check_outcome(receiver, rows, requests_by_sha)
    to_delivery = {sha: (receiver.receipt_at(sha) or float("nan")) - at for sha, at in decided.items()
                   if sha not in warm_up}
    faulted = [t for sha, t in to_delivery.items() if sha not in baseline and receiver.plans.get(sha)]
    clean_under_faults = [t for sha, t in to_delivery.items() if sha not in baseline and not receiver.plans.get(sha)]
    under = len(decided) - args.baseline - 1
    print(f"decisions: {verdict['decisions']} (1 warm-up, {args.baseline} baseline, {under} under faults); "
          f"receiver arrivals {verdict['arrivals']}; wall {time.monotonic() - started_run:.0f} s; all delivered: "
          f"{delivered_all}")
    print(f"faults injected: {sum(verdict['faults_injected'].values())} {verdict['faults_injected']}; "
          f"worker kill -9: {kills} ({in_flight} attempts in flight; worker exits we did not cause: {worker.crashes}); "
          f"broker restarts: {len(restart_batches)}")
    print(f"lost: {len(verdict['lost'])}; delivered without receipt: {len(verdict['delivered_without_receipt'])}; "
          f"foreign or mismatched ids: {len(verdict['foreign_or_mismatched_ids'])}; decisions under several ids: "
          f"{len(verdict['decisions_with_several_ids'])}; bad signatures: {verdict['bad_signatures']}; "
          f"overlapping attempts: {len(verdict['overlapping_attempts'])}")
    print(f"duplicates (same delivery id): arrivals {verdict['duplicate_arrivals']}, "
          f"2xx receipts {verdict['duplicate_receipts']}")
    print(f"time to delivery, baseline without faults: {percentiles([to_delivery[s] for s in baseline])}")
    print(f"time to delivery, decisions given faults:   {percentiles(faulted)}")
    print(f"time to delivery, no fault of their own (same period): {percentiles(clean_under_faults)}")
    print(f"recovery after kill -9 (kill to next attempt): {percentiles(recovery)}")
    print(f"decision call with the broker down: {percentiles(outage_calls)}")
    bad = verdict["lost"] or verdict["delivered_without_receipt"] or verdict["foreign_or_mismatched_ids"] \
        or verdict["decisions_with_several_ids"] or verdict["bad_signatures"] or verdict["overlapping_attempts"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
