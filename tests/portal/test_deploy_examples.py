"""The example deployment files under docs/deploy/ say what the production guide says: the same
commands as the topology test runs, exactly one beat, secrets as files, loopback only in the trial,
and an environment file that passes ``check --deploy``."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.core.exceptions import ImproperlyConfigured
from django.core.management import get_commands

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "docs" / "deploy"
WEB = "gunicorn -c python:portal.gunicorn_conf portal.wsgi"


def procfile() -> dict[str, str]:
    lines = [line for line in (DEPLOY / "Procfile").read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split(": ", 1) for line in lines)


def unit(name: str) -> list[tuple[str, str]]:
    return [tuple(line.split("=", 1)) for line in (DEPLOY / "systemd" / name).read_text().splitlines()
            if "=" in line and not line.startswith("#")]


def test_the_procfile_runs_web_workers_one_beat_and_a_release_step():
    processes = procfile()
    assert set(processes) == {"release", "web", "worker", "beat"}
    assert processes["web"] == f".venv/bin/{WEB}"
    assert processes["beat"].startswith(".venv/bin/celery -A portal beat")
    for command in processes.values():
        for part in command.split(" && "):
            program, *args = part.split()
            assert program.startswith(".venv/bin/") and (ROOT / program).exists(), program
            if program.endswith("python"):
                assert args[0] == "manage.py" and args[1] in get_commands(), part


@pytest.mark.parametrize("name", ["portal-web.service", "portal-worker@.service", "portal-beat.service",
                                  "portal-release.service"])
def test_each_systemd_unit_loads_its_secrets_as_credentials(name):
    entries = unit(name)
    credentials = {value.split(":", 1)[0] for key, value in entries if key == "LoadCredential"}
    used = set(re.findall(r"_FILE=%d/(\w+)", " ".join(v for k, v in entries if k == "Environment")))
    used |= set(re.findall(r"PGPASSFILE=%d/(\w+)", " ".join(v for k, v in entries if k == "Environment")))
    assert credentials == used and {"django_secret_key", "audit_chain_key", "audit_signing_key"} <= credentials
    assert ("User", "portal") in entries
    for key, value in entries:
        assert "PASSWORD" not in value.upper() and "SECRET_KEY=" not in value, (key, value)


def test_the_units_run_what_the_procfile_runs():
    processes = procfile()
    starts = {name: [v for k, v in unit(name) if k == "ExecStart"] for name in
              ("portal-web.service", "portal-beat.service", "portal-release.service")}
    assert starts["portal-web.service"] == [f"/opt/portal/.venv/bin/{WEB}"]
    assert starts["portal-beat.service"] == ["/opt/portal/" + processes["beat"]]
    assert [s.replace("/opt/portal/", "") for s in starts["portal-release.service"]] == \
        processes["release"].split(" && ")
    assert ("Environment", "DATABASE_URL=postgres://portal_owner@127.0.0.1:5432/portal") in \
        unit("portal-release.service")  # migrations as the owner, everything else as the runtime role


def test_the_compose_trial_has_one_beat_two_roles_and_listens_on_loopback_only():
    text = (DEPLOY / "compose.yaml").read_text()
    compose = yaml.safe_load(text)
    services = compose["services"]
    assert services["beat"]["deploy"]["replicas"] == 1 and services["worker"]["deploy"]["replicas"] == 2
    assert services["release"]["environment"]["DATABASE_URL"].startswith("postgres://portal_owner@")
    for name in ("web", "worker", "beat"):
        assert services[name]["environment"]["DATABASE_URL"].startswith("postgres://portal_runtime@")
        assert services[name]["depends_on"]["release"]["condition"] == "service_completed_successfully"
    assert services["web"]["command"] == [f".venv/bin/{WEB.split()[0]}", *WEB.split()[1:]]
    declared = set(compose["secrets"])
    assert all(set(service.get("secrets", [])) <= declared for service in services.values())
    assert set(re.findall(r"\b\d+\.\d+\.\d+\.\d+\b", text)) == {"127.0.0.1"}
    roles = (DEPLOY / "postgres-roles.sh").read_text()
    audit_trail = (ROOT / "docs" / "audit-trail.md").read_text()
    for statement in ("CREATE ROLE portal_audit_maintenance NOLOGIN;", "CREATE DATABASE portal OWNER portal_owner;",
                      "GRANT USAGE ON SCHEMA public TO portal_runtime;"):
        assert statement in roles and statement in audit_trail


def test_the_example_environment_passes_check_deploy(tmp_path):
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    (secrets / "django_secret_key").write_text("q7-vJ2m!x9Lr4tZp0aWc8sKe1NhB6yUd3fGo5iQj_RlTnMbVwXz\n")
    (secrets / "audit_chain_key").write_text("k3-Yb8nQ0wZr5tLp2aVc7sJe4NhC9yUd1fGo6iQj_RmTnMbWx\n")
    (secrets / "metrics_token").write_text("metrics-token-0123456789abcdef\n")
    (secrets / "audit_signing_key").write_text(Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode())
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    for line in (DEPLOY / "portal.env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            key, value = line.split("=", 1)
            env[key] = value
    done = subprocess.run([sys.executable, str(ROOT / "manage.py"), "check", "--deploy", "--fail-level", "WARNING"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


def gunicorn_conf(monkeypatch, **env):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    sys.modules.pop("portal.gunicorn_conf", None)
    return importlib.import_module("portal.gunicorn_conf")


def test_gunicorn_limits_and_workers_come_from_the_environment(monkeypatch):
    conf = gunicorn_conf(monkeypatch, PORTAL_WEB_WORKERS="3", PORTAL_WEB_THREADS="4", PORTAL_LIMIT_REQUEST_LINE="2048")
    assert (conf.workers, conf.threads, conf.worker_class) == (3, 4, "gthread")
    assert (conf.limit_request_line, conf.limit_request_fields, conf.limit_request_field_size) == (2048, 100, 8190)
    assert conf.timeout == 30 and conf.bind == ["127.0.0.1:8000"]


@pytest.mark.parametrize(("variable", "value"), [("PORTAL_LIMIT_REQUEST_LINE", "100000"),
                                                 ("PORTAL_WEB_WORKERS", "0"), ("PORTAL_WEB_TIMEOUT", "soon")])
def test_a_bad_gunicorn_value_stops_start_up_naming_the_variable(monkeypatch, variable, value):
    with pytest.raises(ImproperlyConfigured, match=variable):
        gunicorn_conf(monkeypatch, **{variable: value})
