"""A real Celery worker on Redis runs the periodic jobs against the database (CI runs this)."""

import time
from datetime import timedelta

import pytest
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType

from compliance.people.identity import SYSTEM_USERNAME
from deployments import tasks
from deployments.choices import RequestStatus
from deployments.models import DeploymentRequest
from tests.services_required import require_redis

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def celery_worker():
    """A worker thread consuming from the real broker (Redis), not eager execution."""
    require_redis()
    from celery.contrib.testing.worker import start_worker

    from portal.celery import app

    app.conf.task_always_eager = False
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, loglevel="WARNING",
                          shutdown_timeout=10):
            yield app
    finally:
        app.conf.task_always_eager = True


def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_the_worker_expires_due_requests_as_the_system_actor(celery_worker, submit):
    request = submit()
    DeploymentRequest.objects.filter(pk=request.pk).update(expires_at=request.created_at - timedelta(seconds=1))
    tasks.expire_due_requests.delay()
    assert wait_for(lambda: DeploymentRequest.objects.get(pk=request.pk).status == RequestStatus.EXPIRED)
    entry = LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(DeploymentRequest), object_pk=str(request.pk)
    ).latest("timestamp")
    assert entry.actor.username == SYSTEM_USERNAME
