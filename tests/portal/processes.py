"""Running the portal as production runs it, for the tests that start real processes: the
production environment (DEBUG off, real keys, behind a TLS proxy), ``manage.py`` commands,
gunicorn with ``portal.gunicorn_conf``, Celery workers and beat; every process is stopped by its
pid, never by name."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

_SIGNING_KEY = Ed25519PrivateKey.generate().private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def production_env(var_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a production process: no pytest (TESTING off), DEBUG off, real keys."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DJANGO_", "PYTEST", "DATABASE_URL", "PORTAL_", "CELERY_"))}
    env.update({
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "q7-vJ2m!x9Lr4tZp0aWc8sKe1NhB6yUd3fGo5iQj_RlTnMbVwXz",
        "PORTAL_AUDIT_CHAIN_KEY": "k3-Yb8nQ0wZr5tLp2aVc7sJe4NhC9yUd1fGo6iQj_RmTnMbWx",
        "PORTAL_AUDIT_SIGNING_KEY": _SIGNING_KEY,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_BEHIND_PROXY": "1",
        "PORTAL_VAR_DIR": str(var_dir),
        "PORTAL_ENV_FILE": os.devnull,
        "CELERY_BROKER_URL": "memory://",
    })
    env.update(extra)
    return env


def manage(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"manage.py {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


class Process:
    """One long-running process whose output goes to files under ``logs``."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], logs: Path):
        self.name = name
        self.stdout_path = logs / f"{name}.out"
        self.stderr_path = logs / f"{name}.err"
        self.popen = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=self.stdout_path.open("wb"),
                                      stderr=self.stderr_path.open("wb"), start_new_session=True)

    def output(self) -> str:
        return self.stdout_path.read_text(errors="replace") + self.stderr_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the process group this process leads (gunicorn's or Celery's children included)."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)

    def stop(self, timeout: float = 10) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()


def gunicorn(name: str, port: int, env: dict[str, str], logs: Path, **extra: str) -> Process:
    env = {**env, "PORTAL_BIND": f"127.0.0.1:{port}", "PORTAL_WEB_WORKERS": "1", **extra}
    return Process(name, [str(BIN / "gunicorn"), "-c", "python:portal.gunicorn_conf", "portal.wsgi"], env, logs)


def celery_worker(name: str, env: dict[str, str], logs: Path) -> Process:
    return Process(name, [str(BIN / "celery"), "-A", "portal", "worker", "--pool=solo", f"--hostname={name}@%h",
                          "--without-gossip", "--without-mingle", "--loglevel=INFO"], env, logs)


def celery_beat(env: dict[str, str], logs: Path) -> Process:
    return Process("beat", [str(BIN / "celery"), "-A", "portal", "beat", "--pidfile=", "--loglevel=INFO"], env, logs)


def wait_until_answering(url: str, process: Process, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.popen.poll() is None, f"{process.name} exited:\n{process.output()[-4000:]}"
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{process.name} did not answer {url} within {timeout} s:\n{process.output()[-4000:]}")
