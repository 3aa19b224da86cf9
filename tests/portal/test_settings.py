"""Start-up configuration: bad values name the variable; production settings are deploy-clean."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ROOT = Path(__file__).resolve().parents[2]


def manage(*args, env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST", "DATABASE_URL"))}
    clean.update(env)
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=clean, capture_output=True,
                          text=True, timeout=120)


SIGNING_KEY = Ed25519PrivateKey.generate().private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()

PRODUCTION = {
    "DJANGO_DEBUG": "0",
    "DJANGO_SECRET_KEY": "q7-vJ2m!x9Lr4tZp0aWc8sKe1NhB6yUd3fGo5iQj_RlTnMbVwXz",
    "PORTAL_AUDIT_CHAIN_KEY": "k3-Yb8nQ0wZr5tLp2aVc7sJe4NhC9yUd1fGo6iQj_RmTnMbWx",
    "PORTAL_AUDIT_SIGNING_KEY": SIGNING_KEY,
    "DJANGO_ALLOWED_HOSTS": "portal.example.com",
    "PORTAL_BASE_URL": "https://portal.example.com",
    "DATABASE_URL": "sqlite:////tmp/portal-deploy-check.sqlite3",
}


def test_production_settings_pass_check_deploy_without_warnings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"DJANGO_DEBUG": "perhaps"}, "DJANGO_DEBUG"),
        ({"DJANGO_SECRET_KEY": ""}, "DJANGO_SECRET_KEY"),
        ({"DATABASE_URL": "nosuchdb://x"}, "DATABASE_URL"),
        ({"CELERY_BROKER_URL": "kafka://localhost"}, "CELERY_BROKER_URL"),
        ({"PORTAL_BASE_URL": "portal.example.com"}, "PORTAL_BASE_URL"),
        ({"PORTAL_LOGIN_FAILURE_LIMIT": "0"}, "PORTAL_LOGIN_FAILURE_LIMIT"),
        ({"PORTAL_HTTP_TIMEOUT": "soon"}, "PORTAL_HTTP_TIMEOUT"),
        ({"EMAIL_URL": "pigeon://coop"}, "EMAIL_URL"),
        ({"DJANGO_SECRET_KEY_FILE": "/nonexistent/secret"}, "DJANGO_SECRET_KEY_FILE"),
        ({"PORTAL_AUDIT_CHAIN_KEY": ""}, "PORTAL_AUDIT_CHAIN_KEY"),
        ({"PORTAL_AUDIT_CHAIN_KEY": "short"}, "PORTAL_AUDIT_CHAIN_KEY"),
        ({"PORTAL_AUDIT_CHAIN_KEY": PRODUCTION["DJANGO_SECRET_KEY"]}, "PORTAL_AUDIT_CHAIN_KEY"),
        ({"PORTAL_AUDIT_SIGNING_KEY": ""}, "PORTAL_AUDIT_SIGNING_KEY"),
        ({"PORTAL_AUDIT_SIGNING_KEY": "not a pem key"}, "PORTAL_AUDIT_SIGNING_KEY"),
        ({"PORTAL_METRICS_ALLOWED_NETWORKS": "loopback-please"}, "PORTAL_METRICS_ALLOWED_NETWORKS"),
        ({"PORTAL_METRICS_TOKEN": "too-short"}, "PORTAL_METRICS_TOKEN"),
        ({"PORTAL_LOG_FORMAT": "xml"}, "PORTAL_LOG_FORMAT"),
        ({"PORTAL_ACCESS_REVIEW_DAYS": "0"}, "PORTAL_ACCESS_REVIEW_DAYS"),
        ({"PORTAL_SCIM_TOKEN": "short"}, "PORTAL_SCIM_TOKEN"),
    ],
)
def test_a_bad_value_stops_start_up_naming_the_variable(env, variable):
    result = manage("check", env={**PRODUCTION, **env})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    last_line = result.stderr.strip().splitlines()[-1]
    assert variable in last_line, last_line


def test_a_secret_may_come_from_a_file(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text(PRODUCTION["DJANGO_SECRET_KEY"] + "\n")
    env = {k: v for k, v in PRODUCTION.items() if k != "DJANGO_SECRET_KEY"}
    result = manage("check", "--deploy", "--fail-level", "WARNING", env={**env, "DJANGO_SECRET_KEY_FILE": str(secret)})
    assert result.returncode == 0, result.stderr


def test_migration_commands_need_no_secret_key_but_everything_else_does():
    offline = manage("makemigrations", "--check", "--dry-run", env={})
    assert offline.returncode == 0, offline.stdout + offline.stderr
    assert "No changes detected" in offline.stdout
    serving = manage("check", env={})
    assert serving.returncode != 0 and "DJANGO_SECRET_KEY" in serving.stderr.strip().splitlines()[-1]
