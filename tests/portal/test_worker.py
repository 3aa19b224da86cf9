"""A real Celery worker on Redis runs the periodic jobs against the database (CI runs this)."""

from datetime import timedelta

import pytest
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType

from compliance.people.identity import SYSTEM_USERNAME
from deployments import tasks
from deployments.choices import RequestStatus
from deployments.models import DeploymentRequest
from tests.services_required import wait_for

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def test_the_worker_expires_due_requests_as_the_system_actor(celery_worker, submit):
    request = submit()
    DeploymentRequest.objects.filter(pk=request.pk).update(expires_at=request.created_at - timedelta(seconds=1))
    tasks.expire_due_requests.delay()
    assert wait_for(lambda: DeploymentRequest.objects.get(pk=request.pk).status == RequestStatus.EXPIRED)
    entry = LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(DeploymentRequest), object_pk=str(request.pk)
    ).latest("timestamp")
    assert entry.actor.username == SYSTEM_USERNAME
