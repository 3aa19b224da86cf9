"""The fault-injection kit: a private redis-server, real Celery worker and beat processes, and a CI
receiver on loopback that injects faults. Used by ``tests/delivery/test_faults.py`` (CI) and by
``bench/faults.py`` (the larger run); the decisions go through the real services and the real outbox.

Faults the receiver injects, chosen per decision (by commit sha) and per arrival:

* ``500``, ``503``: a server error; ``429s`` / ``429d``: rate limited with ``Retry-After`` in
  seconds / as an HTTP date;
* ``slow``: ``200`` headers at once, then the body one byte a second (only the deadline ends it);
* ``reset``: the request is read, then the connection is reset (TCP RST);
* ``hold``: the request is read and never answered; ``held`` is set so the caller can ``kill -9``
  the worker during the attempt;
* ``ok``: ``200``.

A *receipt* is a complete ``2xx`` answer the receiver wrote for a delivery id: a delivery the portal
marks delivered must have one (else it was delivered without receipt); any other arrival is only
"received".
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FAULTS = ("500", "503", "429s", "429d", "slow", "reset")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A redis-server of our own on a loopback port, no persistence: a restart loses every message."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.directory = directory
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory), "--logfile", str(self.directory / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


class CeleryProcess:
    """``celery -A portal worker`` (threads pool) or ``celery -A portal beat``, as a subprocess kept
    running the way systemd's ``Restart=always`` would: a process that exits is started again
    (``crashes`` counts the exits we did not cause, e.g. a worker that died of a broker restart)."""

    def __init__(self, kind: str, env: dict, log: Path, name: str = "faults", concurrency: int = 4) -> None:
        self.kind, self.env, self.log, self.name, self.concurrency = kind, env, log, name, concurrency
        self.process: subprocess.Popen | None = None
        self.starts = 0
        self.crashes = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None

    def start(self) -> None:
        with self._lock:
            self._spawn()
        if self._supervisor is None:
            self._supervisor = threading.Thread(target=self._supervise, daemon=True)
            self._supervisor.start()

    def _spawn(self) -> None:
        self.starts += 1
        if self.kind == "worker":
            args = ["worker", "-P", "threads", "-c", str(self.concurrency), "-n", f"{self.name}-{self.starts}@%h",
                    "--without-gossip", "--without-mingle", "--loglevel=WARNING"]
        else:
            args = ["beat", "--pidfile=", "--loglevel=WARNING"]
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "celery", "-A", "portal", *args],
                                            cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT)

    def _supervise(self) -> None:
        while not self._stopping.wait(0.5):
            with self._lock:
                if self.process is not None and self.process.poll() is not None:
                    self.crashes += 1
                    self._spawn()

    def kill(self) -> None:
        """``kill -9``: no shutdown, no acknowledgement, leases left as they were; restarted at once."""
        with self._lock:
            if self.process is not None and self.process.poll() is None:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
            self._spawn()

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            if self.process is not None and self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(15)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(10)


def process_env(*, database_url: str, broker_url: str, var_dir: Path, secret_key: str, **overrides: str) -> dict:
    """The environment of the worker and beat: the test's database and secret key, our broker, short
    backoffs so that a run fits in minutes, loopback allowed as the CI host."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "DJANGO_", "CELERY_", "PORTAL_"))}
    env.update({
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "DJANGO_DEBUG": "1",
        "DJANGO_SECRET_KEY": secret_key,
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": broker_url,
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "PORTAL_VAR_DIR": str(var_dir),
        "PORTAL_OUTBOUND_ALLOWED_HOSTS": "127.0.0.1",
        "PORTAL_HTTP_TIMEOUT": "3",
        "PORTAL_HTTP_DEADLINE": "5",
        "PORTAL_DELIVERY_MAX_ATTEMPTS": "40",
        "PORTAL_DELIVERY_BACKOFF_SECONDS": "1",
        "PORTAL_DELIVERY_BACKOFF_CAP_SECONDS": "2",
        "PORTAL_DELIVERY_RETRY_AFTER_CAP_SECONDS": "5",
    })
    if "PORTAL_INTEGRATIONS" in os.environ:
        env["PORTAL_INTEGRATIONS"] = os.environ["PORTAL_INTEGRATIONS"]
    env.update(overrides)
    return env


@dataclass
class Arrival:
    sha: str
    delivery_id: str  # the X-Portal-Delivery header
    body_delivery_id: int | None
    signed: bool
    fault: str
    at: float  # monotonic
    answered: bool = False  # a complete 2xx was written: a receipt


@dataclass
class FaultyReceiver:
    """A CI endpoint on loopback: verifies each signature and answers with the planned fault."""

    secret: str
    verify: object  # callable(secret, body, header) -> bool
    plans: dict[str, list[str]] = field(default_factory=dict)  # sha -> faults for its 1st, 2nd, … arrival
    arrivals: list[Arrival] = field(default_factory=list)
    injected: Counter = field(default_factory=Counter)
    held: threading.Event = field(default_factory=threading.Event)
    holding: int = 0

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):  # noqa: N802
                receiver._handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        try:
            payload = json.loads(body)
        except ValueError:
            payload = {}
        sha = (payload.get("request") or {}).get("sha", "")
        with self.lock:
            seen = sum(1 for a in self.arrivals if a.sha == sha)
            plan = self.plans.get(sha, [])
            fault = plan[seen] if seen < len(plan) else "ok"
            arrival = Arrival(sha=sha, delivery_id=handler.headers.get("X-Portal-Delivery", ""),
                              body_delivery_id=payload.get("delivery_id"),
                              signed=self.verify(self.secret, body, handler.headers.get("X-Portal-Signature", "")),
                              fault=fault, at=time.monotonic())
            self.arrivals.append(arrival)
            if fault != "ok":
                self.injected[fault] += 1
            if fault == "hold":
                self.holding += 1
                self.held.set()
        answer = getattr(self, "_answer_" + ("http" if fault[:3].isdigit() else fault))
        with contextlib.suppress(OSError):
            answer(handler, fault, arrival)

    def _answer_ok(self, handler, fault, arrival) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "2")
        handler.end_headers()
        handler.wfile.write(b"ok")
        handler.wfile.flush()
        arrival.answered = True

    def _answer_http(self, handler, fault, arrival) -> None:
        handler.send_response(int(fault[:3]))
        if fault == "429s":
            handler.send_header("Retry-After", "1")
        elif fault == "429d":
            handler.send_header("Retry-After", formatdate(time.time() + 2, usegmt=True))
        handler.send_header("Content-Length", "9")
        handler.end_headers()
        handler.wfile.write(b"try later")

    def _answer_slow(self, handler, fault, arrival) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "60")
        handler.end_headers()
        for _ in range(60):
            handler.wfile.write(b"x")
            handler.wfile.flush()
            time.sleep(1)  # ended by the portal's deadline (a broken pipe here)

    def _answer_reset(self, handler, fault, arrival) -> None:
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        handler.close_connection = True
        handler.connection.close()

    def _answer_hold(self, handler, fault, arrival) -> None:
        handler.connection.settimeout(300)
        while handler.connection.recv(1024):  # until the worker's end closes the connection
            pass
        handler.close_connection = True

    # --- what it saw --------------------------------------------------------------------------

    def receipts(self) -> list[Arrival]:
        with self.lock:
            return [a for a in self.arrivals if a.answered]

    def first_arrival(self, sha: str) -> float | None:
        with self.lock:
            return next((a.at for a in self.arrivals if a.sha == sha), None)

    def arrival_after(self, sha: str, moment: float) -> float | None:
        with self.lock:
            return next((a.at for a in self.arrivals if a.sha == sha and a.at > moment), None)

    def receipt_at(self, sha: str) -> float | None:
        with self.lock:
            return next((a.at for a in self.arrivals if a.sha == sha and a.answered), None)


def check_outcome(receiver: FaultyReceiver, rows, requests_by_sha: dict) -> dict:
    """The run's verdict from the database rows (``DecisionDelivery`` with their attempt log) and the
    receiver's arrivals: lost, delivered without receipt, duplicates, foreign ids, bad signatures,
    overlapping attempts."""
    receipts = receiver.receipts()
    by_id: dict[str, list[Arrival]] = {}
    for arrival in receiver.arrivals:
        by_id.setdefault(arrival.delivery_id, []).append(arrival)
    row_ids = {str(row.pk): row for row in rows}
    lost = [row.pk for row in rows if row.status != "delivered"]
    without_receipt = [row.pk for row in rows
                       if row.status == "delivered" and not any(a.delivery_id == str(row.pk) for a in receipts)]
    foreign = [a for a in receiver.arrivals
               if a.delivery_id not in row_ids or str(a.body_delivery_id) != a.delivery_id
               or row_ids[a.delivery_id].request_id != requests_by_sha.get(a.sha)]
    # One delivery id per decision: a CI de-duplicating by id sees every repeat as the same delivery.
    ids_per_sha: dict[str, set[str]] = {}
    for arrival in receiver.arrivals:
        ids_per_sha.setdefault(arrival.sha, set()).add(arrival.delivery_id)
    mixed = {sha: ids for sha, ids in ids_per_sha.items() if len(ids) > 1}
    receipts_per_id = Counter(a.delivery_id for a in receipts)
    overlapping = []
    for row in rows:
        attempts = sorted(row.attempt_log.all(), key=lambda a: (a.started_at, a.id))
        for earlier, later in zip(attempts, attempts[1:], strict=False):
            if earlier.finished_at is None or earlier.finished_at > later.started_at:
                overlapping.append((row.pk, earlier.number, later.number))
    return {
        "decisions": len(rows),
        "arrivals": len(receiver.arrivals),
        "lost": lost,
        "delivered_without_receipt": without_receipt,
        "foreign_or_mismatched_ids": foreign,
        "decisions_with_several_ids": mixed,
        "duplicate_arrivals": sum(len(v) - 1 for v in by_id.values()),
        "duplicate_receipts": sum(n - 1 for n in receipts_per_id.values()),
        "bad_signatures": sum(1 for a in receiver.arrivals if not a.signed),
        "overlapping_attempts": overlapping,
        "faults_injected": dict(receiver.injected),
    }


def percentiles(values: list[float]) -> str:
    if not values:
        return "n=0"
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return (f"n={len(ordered)} p50={statistics.median(ordered):.2f}s p99={p99:.2f}s max={ordered[-1]:.2f}s")
