"""The production topology, exercised: two gunicorn processes (different ports), two Celery workers
and one beat on PostgreSQL and Redis, production settings (DEBUG off, behind a TLS proxy).

Scenario: CI submits a request per environment through both web processes; two approvers decide
each at the same moment through different web processes (one request gets an approval and a
rejection at once); decisions go to a local CI receiver (signed webhook). The first two deliveries
are held by the receiver until both workers are mid-attempt, and one worker is killed (SIGKILL).

Asserted: one decision per request; one delivery per decision, every one received with a valid
signature; a delivery received more than once only under its own delivery id (the at-least-once
contract of docs/ci-webhook.md); the killed worker's delivery re-attempted by the other; the audit
chain verifies; both web processes ready (/readyz) with an empty outbox (/metrics).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

from deployments.delivery.providers import webhook
from tests.portal.processes import (
    celery_beat,
    celery_worker,
    free_port,
    gunicorn,
    manage,
    production_env,
    wait_until_answering,
)
from tests.services_required import require_postgres, require_redis

pytestmark = [pytest.mark.whole_system, pytest.mark.postgres, pytest.mark.redis]

SECRET = "whsec-topology-0123456789"
ENVIRONMENTS = 6
METRICS_TOKEN = "topology-metrics-token-0123456789"
PROXY = {"X-Forwarded-Proto": "https"}


class Receiver:
    """A CI endpoint on loopback: records every POST, verifies its signature, answers 200. The first
    ``hold`` calls wait (up to 15 s) until the test releases them."""

    def __init__(self, hold: int):
        self.calls: list[dict] = []
        self.lock = threading.Lock()
        self.hold = hold
        self.held = 0
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.calls.append({
                        "delivery": self.headers.get("X-Portal-Delivery"),
                        "signed": webhook.verify(SECRET, body, self.headers.get(webhook.SIGNATURE_HEADER, "")),
                        "body": json.loads(body),
                    })
                    hold = receiver.held < receiver.hold
                    receiver.held += hold
                if hold:
                    receiver.release.wait(15)
                try:
                    self.send_response(200)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the worker that sent it was killed

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def requests_received(self) -> set[int]:
        with self.lock:
            return {call["body"]["request"]["id"] for call in self.calls}


def call(method: str, url: str, token: str | None = None, body: dict | None = None) -> tuple[int, dict]:
    headers = {**PROXY, "Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, method=method, headers=headers,
                                     data=json.dumps(body).encode() if body is not None else None)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode()
            return response.status, json.loads(text) if "json" in response.headers.get("Content-Type", "") else {}
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def wait_for(predicate, timeout: float, what: str, processes=()) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    logs = "\n".join(f"--- {p.name}\n{p.output()[-3000:]}" for p in processes)
    raise AssertionError(f"timed out waiting for {what}\n{logs}")


@pytest.fixture
def topology_database():
    require_postgres()
    config = settings.DATABASES["default"]
    name = f"{config['NAME']}_topology"
    params = {"host": config["HOST"] or "127.0.0.1", "port": config["PORT"] or 5432, "user": config["USER"],
              "password": config["PASSWORD"] or None}
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    password = f":{params['password']}" if params["password"] else ""
    yield {"url": f"postgres://{params['user']}{password}@{params['host']}:{params['port']}/{name}",
           "connect": lambda: psycopg.connect(dbname=name, **params)}
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_two_web_processes_two_workers_and_one_beat(topology_database, collected_static, tmp_path: Path):
    broker = require_redis()
    receiver = Receiver(hold=2)
    ports = [free_port(), free_port()]
    env = production_env(
        collected_static,
        DATABASE_URL=topology_database["url"], CELERY_BROKER_URL=broker, PORTAL_INTEGRATIONS="",
        PORTAL_BASE_URL=f"http://127.0.0.1:{ports[0]}", PORTAL_AUDIT_CHECKPOINT_DIR=str(tmp_path / "checkpoints"),
        PORTAL_OUTBOUND_ALLOWED_HOSTS="127.0.0.1", PORTAL_HTTP_DEADLINE="4", PORTAL_HTTP_TIMEOUT="4",
        PORTAL_DELIVERY_BACKOFF_SECONDS="1", PORTAL_METRICS_TOKEN=METRICS_TOKEN, PORTAL_WEB_THREADS="4",
        PORTAL_LOG_FORMAT="json",
    )
    manage(env, "migrate", "--noinput")
    manage(env, "shell", "-c", "from celery import current_app; current_app.control.purge()")
    setup_env = {**env, "TOPOLOGY_RECEIVER_URL": receiver.url, "TOPOLOGY_WEBHOOK_SECRET": SECRET,
                 "TOPOLOGY_ENVIRONMENTS": str(ENVIRONMENTS)}
    created = manage(setup_env, "shell", "-c",
                     "import runpy; runpy.run_path('tests/portal/topology_setup.py', run_name='__main__')")
    setup = json.loads(created.stdout.strip().splitlines()[-1])

    webs = [gunicorn(f"web{i}", port, env, tmp_path) for i, port in enumerate(ports)]
    workers = [celery_worker(f"worker{i}", env, tmp_path) for i in range(2)]
    beat = celery_beat(env, tmp_path)
    everything = [*webs, *workers, beat]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for web, url in zip(webs, urls, strict=True):
            wait_until_answering(f"{url}/healthz", web)
        wait_for(lambda: all("ready." in w.output() for w in workers), 60, "both workers ready", everything)

        # CI submits one request per environment, alternating between the two web processes.
        requests = []
        for number, environment in enumerate(setup["environments"]):
            status, body = call("POST", f"{urls[number % 2]}/api/v1/requests/", setup["ci"], {
                "service": setup["service"], "environment": environment, "sha": f"{number + 1:040x}",
                "ref": "main"})
            assert status == 201, body
            requests.append(body)
        assert len({r["id"] for r in requests}) == ENVIRONMENTS

        def decide(request, approver: int, web: int, verb: str = "approve"):
            body = ({"checklist": {item: True for item in request["policy"]["impact_checklist"]}}
                    if verb == "approve" else {"comment": "Not this week: the freeze is coming."})
            return call("POST", f"{urls[web]}/api/v1/requests/{request['id']}/{verb}/",
                        setup["approvers"][approver], body)

        with ThreadPoolExecutor(max_workers=4) as pool:
            # The first two decisions at once (two approvers each, through both web processes): the
            # receiver holds both deliveries, so each worker is mid-attempt; then one worker is killed.
            first = [pool.submit(decide, request, approver, approver % 2)
                     for request in requests[:2] for approver in (0, 1)]
            assert all(f.result()[0] == 200 for f in first), [f.result() for f in first]
            wait_for(lambda: receiver.held == 2, 30, "both workers mid-attempt", everything)
            workers[0].kill()
            receiver.release.set()

            # The rest: two approvals at the same moment through different web processes; the last
            # request gets an approval and a rejection at once.
            rest = [pool.submit(decide, request, approver, approver % 2)
                    for request in requests[2:-1] for approver in (1, 2)]
            race = [pool.submit(decide, requests[-1], 0, 0), pool.submit(decide, requests[-1], 2, 1, "reject")]
            assert all(f.result()[0] == 200 for f in rest), [f.result() for f in rest]
            race_statuses = sorted(f.result()[0] for f in race)
            assert race_statuses in ([200, 200], [200, 409]), [f.result() for f in race]

        every_request = {r["id"] for r in requests}

        def settled() -> bool:  # every decision queued and none pending (the killed worker's one included)
            with topology_database["connect"]() as db:
                rows = db.execute("SELECT request_id, status FROM deployments_decisiondelivery").fetchall()
            return {r[0] for r in rows} == every_request and {r[1] for r in rows} == {"delivered"}

        wait_for(settled, 60, "every decision delivered", everything)
        assert receiver.requests_received() == every_request
        wait_for(lambda: all(call("GET", f"{url}/readyz")[0] == 200 for url in urls), 30,
                 "both web processes ready (beat alive)", everything)

        with topology_database["connect"]() as db:
            decisions = db.execute(
                "SELECT request_id, count(*) FROM deployments_requestevent WHERE kind IN ('approved', 'rejected', "
                "'blocked') GROUP BY request_id").fetchall()
            statuses = dict(db.execute("SELECT id, status FROM deployments_deploymentrequest").fetchall())
            deliveries = db.execute(
                "SELECT id, request_id, decision, status, attempts FROM deployments_decisiondelivery").fetchall()
            approvals = dict(db.execute(
                "SELECT request_id, count(*) FROM deployments_approval GROUP BY request_id").fetchall())

        assert dict(decisions) == dict.fromkeys(every_request, 1)  # one decision per request
        assert {statuses[r] for r in every_request - {requests[-1]["id"]}} == {"approved"}
        assert statuses[requests[-1]["id"]] == "rejected"  # any rejection rejects, whoever came first
        assert all(approvals[r["id"]] == 2 for r in requests[:-1])  # both concurrent approvals counted
        assert sorted(d[1] for d in deliveries) == sorted(every_request)  # one delivery per decision
        assert {d[3] for d in deliveries} == {"delivered"}
        assert max(d[4] for d in deliveries) >= 2  # the killed worker's delivery was attempted again

        by_id = {str(d[0]): d for d in deliveries}
        assert all(call["signed"] for call in receiver.calls)
        assert {call["delivery"] for call in receiver.calls} == set(by_id)  # every delivery received
        for call_ in receiver.calls:  # a repeat is the same delivery (id, request, decision)
            delivery = by_id[call_["delivery"]]
            assert (call_["body"]["request"]["id"], call_["body"]["decision"]) == (delivery[1], delivery[2])

        status, _ = call("GET", f"{urls[1]}/metrics")
        assert status == 401
        request = urllib.request.Request(f"{urls[1]}/metrics",
                                         headers={**PROXY, "Authorization": f"Bearer {METRICS_TOKEN}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            metrics = response.read().decode()
        assert 'portal_outbox_depth{provider="webhook"} 0.0' in metrics
        assert 'portal_deployment_requests{state="approved"} 5.0' in metrics
    finally:
        for process in everything:
            process.stop()
        receiver.server.shutdown()
    manage(env, "verify_audit_chain", "--seal")  # exits non-zero on any problem, naming its kind
