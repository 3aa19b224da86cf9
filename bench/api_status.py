#!/usr/bin/env python3
"""Benchmark: GET one request's status (/api/v1/requests/<id>/status/, what CI polls) vs a trivial
DRF endpoint (/api/v1/me/, same auth), and p95 of create.

Runs the portal under gunicorn against PostgreSQL on loopback only, with a CI service-account
token (the realistic poller), then prints medians over several rounds and the ratio:

    .venv/bin/python bench/api_status.py [--database postgres://postgres@127.0.0.1:5432/portal_api_bench]
        [--workers 2] [--clients 4] [--seconds 4] [--rounds 5] [--creates 200]

The database is created if missing and migrated; nothing outside it is touched. Not part of the
test run. Every loop is bounded (by time and by a request cap).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests
from pgdb import ensure_database  # bench/ is the script's directory, first on sys.path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

SEED = r"""
import json
from django.contrib.auth import get_user_model
from guardian.shortcuts import assign_perm
from deployments.gate import services
from deployments.api import tokens
from deployments.models import Service
User = get_user_model()
service, _ = Service.objects.get_or_create(name="bench-service", defaults={"repository": "acme/bench"})
env = service.environments.filter(name="staging").first() or services.create_environment(
    actor=None, service=service, name="staging")
ci, _ = User.objects.get_or_create(username="bench-ci", defaults={"is_service_account": True})
assign_perm("deployments.request_deployment", ci, env)
_, token = tokens.create_api_token(actor=ci, user=ci, name="bench", services=[service])
request = services.submit_request(actor=ci, environment=env, sha="b" * 40, ref="main")
print(json.dumps({"token": token, "request": request.pk, "service": service.name}))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_load(url: str, headers: dict, *, clients: int, seconds: float, cap: int = 200_000) -> float:
    """Requests per second over ``seconds`` with ``clients`` concurrent keep-alive clients."""
    deadline = time.monotonic() + seconds
    counts = [0] * clients
    errors = [0] * clients

    def worker(i: int) -> None:
        session = requests.Session()
        while time.monotonic() < deadline and counts[i] < cap:
            response = session.get(url, headers=headers, timeout=10)
            if response.status_code != 200:
                errors[i] += 1
            counts[i] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    if sum(errors):
        raise SystemExit(f"{sum(errors)} non-200 answers from {url}")
    return sum(counts) / elapsed


def create_latencies(base: str, headers: dict, service: str, count: int) -> list[float]:
    session = requests.Session()
    latencies = []
    for i in range(count):
        body = {"service": service, "environment": "staging", "sha": f"{i:040x}", "ref": "main"}
        started = time.perf_counter()
        response = session.post(f"{base}/api/v1/requests/", json=body, headers=headers, timeout=10)
        latencies.append((time.perf_counter() - started) * 1000)
        if response.status_code != 201:
            raise SystemExit(f"create failed: {response.status_code} {response.text[:200]}")
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default=os.environ.get(
        "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/portal_api_bench"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--creates", type=int, default=200)
    args = parser.parse_args()

    ensure_database(args.database)
    env = {
        **os.environ,
        "DATABASE_URL": args.database,
        "DJANGO_SECRET_KEY": "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "DJANGO_SECURE_COOKIES": "0",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "PORTAL_LOG_LEVEL": "WARNING",
        "CELERY_BROKER_URL": "memory://",
    }
    env.pop("PYTEST_VERSION", None)
    manage = [PYTHON, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--verbosity", "0"], cwd=ROOT, env=env, check=True)
    seeded = subprocess.run([*manage, "shell", "-c", SEED], cwd=ROOT, env=env, check=True, capture_output=True,
                            text=True)
    data = json.loads(seeded.stdout.strip().splitlines()[-1])
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    gunicorn = subprocess.Popen(
        [PYTHON, "-m", "gunicorn", "portal.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", str(args.workers),
         "--log-level", "warning", "--keep-alive", "5"],
        cwd=ROOT, env=env,
    )
    try:
        headers = {"Authorization": f"Bearer {data['token']}"}
        for _ in range(100):
            try:
                if requests.get(f"{base}/api/v1/me/", headers=headers, timeout=10).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.1)
        else:
            raise SystemExit("gunicorn did not start")
        status_url = f"{base}/api/v1/requests/{data['request']}/status/"
        trivial_url = f"{base}/api/v1/me/"
        run_load(status_url, headers, clients=args.clients, seconds=1)  # warm-up
        run_load(trivial_url, headers, clients=args.clients, seconds=1)
        status_rps, trivial_rps = [], []
        for _ in range(args.rounds):
            trivial_rps.append(run_load(trivial_url, headers, clients=args.clients, seconds=args.seconds))
            status_rps.append(run_load(status_url, headers, clients=args.clients, seconds=args.seconds))
        latencies = create_latencies(base, headers, data["service"], args.creates)
    finally:
        gunicorn.terminate()
        gunicorn.wait(timeout=20)
    status_median = statistics.median(status_rps)
    trivial_median = statistics.median(trivial_rps)
    p95 = statistics.quantiles(latencies, n=20)[18]
    print(f"gunicorn workers={args.workers}, clients={args.clients}, {args.rounds} rounds of {args.seconds:g}s, "
          f"PostgreSQL {args.database.rsplit('/', 1)[-1]}")
    print(f"GET /api/v1/me/ (trivial DRF endpoint):  median {trivial_median:8.1f} req/s  "
          f"rounds {', '.join(f'{r:.0f}' for r in trivial_rps)}")
    print(f"GET /api/v1/requests/<id>/status/:        median {status_median:8.1f} req/s  "
          f"rounds {', '.join(f'{r:.0f}' for r in status_rps)}")
    paired = statistics.median(s / t for s, t in zip(status_rps, trivial_rps, strict=True))
    print(f"ratio status/trivial: {status_median / trivial_median:.0%} of medians, {paired:.0%} median of "
          f"paired rounds (target >= 60%)")
    print(f"POST /api/v1/requests/ x{len(latencies)}: median {statistics.median(latencies):.1f} ms, "
          f"p95 {p95:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
