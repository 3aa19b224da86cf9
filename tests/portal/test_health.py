"""/readyz: database, broker, migrations applied and the beat schedule alive; 503 naming what is not."""

from datetime import timedelta

import pytest
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

from compliance.monitoring.jobs import job_started
from portal import health

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def migrations_checked_afresh(monkeypatch):
    monkeypatch.setattr(health, "_migrations_applied", False)


def test_ready_when_every_check_holds(client):
    job_started(task="deployments.sweep_deliveries")
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"database", "broker", "migrations", "beat"}
    assert all(check["ok"] for check in body["checks"].values())
    assert body["checks"]["beat"]["last_job_started_seconds_ago"] < 5


def test_not_ready_before_beat_ever_ran_a_job(client):
    response = client.get("/readyz")
    assert response.status_code == 503
    beat = response.json()["checks"]["beat"]
    assert beat["ok"] is False and "celery beat" in beat["error"]
    assert response.json()["checks"]["database"]["ok"] is True


def test_not_ready_when_the_last_job_started_too_long_ago(client, settings):
    settings.PORTAL_READYZ_BEAT_MAX_AGE_SECONDS = 120
    job_started(task="deployments.sweep_deliveries", now=timezone.now() - timedelta(seconds=121))
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["beat"]["last_job_started_seconds_ago"] >= 121


def test_beat_may_be_left_out_of_readiness(client, settings):
    settings.PORTAL_READYZ_REQUIRE_BEAT = False
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["beat"] == {"last_job_started_seconds_ago": None, "required": False,
                                                 "ok": True, "ms": response.json()["checks"]["beat"]["ms"]}


def test_not_ready_with_the_broker_unreachable(client, settings):
    job_started(task="deployments.sweep_deliveries")
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {}
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"] == {"ok": False, "error": "OperationalError"}


def test_not_ready_while_a_migration_of_this_code_is_unapplied(client):
    job_started(task="deployments.sweep_deliveries")
    latest = MigrationRecorder.Migration.objects.filter(app="deployments").order_by("-name").first()
    latest.delete()
    response = client.get("/readyz")
    assert response.status_code == 503
    migrations = response.json()["checks"]["migrations"]
    assert migrations["ok"] is False and migrations["pending"] >= 1 and "migrate" in migrations["error"]


def test_readyz_is_exempt_from_the_https_redirect_for_probes(settings):
    assert any(pattern == r"^readyz$" for pattern in settings.SECURE_REDIRECT_EXEMPT)
