"""The standing fault-injection run: decisions made through the services reach a faulty CI receiver
through a real Celery worker and beat on a redis-server of the test's own, while the receiver answers
500/503/429 (Retry-After in seconds and as an HTTP date), trickles bodies, resets connections, the
worker is killed with SIGKILL during attempts and the broker restarts (losing every queued message).

Asserted: every decision delivered (0 lost), none marked delivered without a receipt, repeats only
under the decision's one delivery id, every signature valid, no two attempts of one delivery
overlapping. Printed (not asserted): time from decision to delivery, recovery after the kill.
The larger run is ``bench/faults.py``.
"""

from __future__ import annotations

import shutil
import time

import pytest
from django.conf import settings as django_settings
from django.db import connection

from deployments.choices import DeliveryStatus
from deployments.delivery.providers import webhook
from deployments.models import DecisionDelivery
from tests import factories
from tests.delivery.faultkit import (
    FAULTS,
    CeleryProcess,
    FaultyReceiver,
    RedisServer,
    check_outcome,
    percentiles,
    process_env,
)
from tests.delivery.test_delivery import SECRET, configure_webhook
from tests.services_required import missing, wait_for

pytestmark = [pytest.mark.whole_system, pytest.mark.redis, pytest.mark.postgres,
              pytest.mark.django_db(transaction=True)]


def database_url() -> str:
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def fault_rig(postgres, settings, monkeypatch, tmp_path, environment):
    """Our redis-server, a worker and beat on it, the faulty receiver as the environment's webhook."""
    if shutil.which("redis-server") is None:
        missing("needs redis-server (Debian package redis-server)")
    from portal.celery import app

    redis = RedisServer(tmp_path / "redis")
    redis.start()
    monkeypatch.setenv("CELERY_BROKER_WRITE_URL", redis.url)  # the decisions' after-commit publish
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
    app.conf.task_always_eager = False
    receiver = FaultyReceiver(SECRET, webhook.verify)
    configure_webhook(environment, receiver.url)
    env = process_env(database_url=database_url(), broker_url=redis.url, var_dir=tmp_path / "var",
                      secret_key=django_settings.SECRET_KEY)
    worker = CeleryProcess("worker", env, tmp_path / "worker.log")
    beat = CeleryProcess("beat", env, tmp_path / "beat.log")
    worker.start()
    beat.start()
    try:
        yield redis, receiver, worker
        print(f"worker: {worker.starts} starts, {worker.crashes} exits it was not told to make; "
              f"beat: {beat.crashes} such exits")
    finally:
        worker.stop()
        beat.stop()
        redis.stop()
        receiver.close()
        app.conf.task_always_eager = True
        for name in ("worker.log", "beat.log"):
            log = tmp_path / name
            if log.exists():
                print(f"--- {name} (last lines) ---\n" + "\n".join(log.read_text().splitlines()[-15:]))


def test_decisions_survive_http_faults_worker_kills_and_a_broker_restart(fault_rig, submit, approvers):
    redis, receiver, worker = fault_rig
    decided: dict[str, float] = {}
    requests_by_sha: dict[str, int] = {}

    def decide(plan: list[str]) -> float:
        sha = factories.sha()
        receiver.plans[sha] = plan
        request = submit(sha=sha)
        started = time.monotonic()
        factories.approve(request, approvers[0])  # commits; the outbox row is published after commit
        decided[sha] = time.monotonic()
        requests_by_sha[sha] = request.pk
        return decided[sha] - started

    def all_delivered() -> bool:
        return not DecisionDelivery.objects.exclude(status=DeliveryStatus.DELIVERED).exists()

    # 1. HTTP faults of every kind, two attempts held open and the worker killed during them.
    for _ in range(2):
        decide(["hold"])
    for i in range(12):
        decide([FAULTS[i % len(FAULTS)]] + ([FAULTS[(i + 3) % len(FAULTS)]] if i % 2 else []))
    assert receiver.held.wait(90), "no attempt reached the receiver"
    time.sleep(0.5)  # let the second held attempt arrive
    killed_at = time.monotonic()
    held = [a.sha for a in receiver.arrivals if a.fault == "hold" and a.at > killed_at - 4]
    worker.kill()  # and started again, as a supervisor would
    assert wait_for(all_delivered, timeout=120), "decisions left undelivered after the HTTP faults and the kill"
    recovery = [receiver.arrival_after(sha, killed_at) - killed_at for sha in held]

    # 2. The broker restarts: decisions made while it is down still return at once and are delivered.
    redis.stop()
    during_outage = [decide([]) for _ in range(3)]
    time.sleep(2)
    redis.start()
    assert wait_for(all_delivered, timeout=90), "decisions made during the broker outage were not delivered"

    rows = list(DecisionDelivery.objects.prefetch_related("attempt_log"))
    verdict = check_outcome(receiver, rows, requests_by_sha)
    to_delivery = [receiver.receipt_at(sha) - at for sha, at in decided.items()]
    print(f"\nfault suite: {verdict['decisions']} decisions, {verdict['arrivals']} arrivals, "
          f"faults injected {verdict['faults_injected']}, 1 worker kill -9 ({len(held)} attempts in flight), "
          f"1 broker restart")
    print(f"time to delivery: {percentiles(to_delivery)}")
    print(f"recovery after kill -9 (kill to next attempt): {percentiles(recovery)}")
    print(f"decision calls with the broker down: {percentiles(during_outage)}")
    print(f"lost {len(verdict['lost'])}, delivered without receipt {len(verdict['delivered_without_receipt'])}, "
          f"duplicate arrivals {verdict['duplicate_arrivals']} (receipts {verdict['duplicate_receipts']})")

    assert verdict["decisions"] == len(decided)
    assert verdict["lost"] == []
    assert verdict["delivered_without_receipt"] == []
    assert verdict["foreign_or_mismatched_ids"] == []
    assert verdict["decisions_with_several_ids"] == {}
    assert verdict["bad_signatures"] == 0
    assert verdict["overlapping_attempts"] == []
    assert held, "the kill did not interrupt an attempt"
    assert set(verdict["faults_injected"]) >= {*FAULTS, "hold"}
