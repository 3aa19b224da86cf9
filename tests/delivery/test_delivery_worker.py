"""A real Celery worker on Redis delivers an outbox row written by an approval (CI runs this)."""

import pytest
from pytest_httpserver import HTTPServer

from deployments.choices import DeliveryStatus, EventKind
from deployments.models import DecisionDelivery, RequestEvent
from tests import factories
from tests.delivery.test_delivery import Receiver, configure_webhook
from tests.services_required import wait_for

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def test_a_worker_on_redis_delivers_the_decision_after_commit(celery_worker, httpserver: HTTPServer, environment,
                                                              submit, approvers):
    receiver = Receiver(httpserver, [200])
    configure_webhook(environment, receiver.url)
    request = submit()
    factories.approve(request, approvers[0])  # commits; the on-commit hook enqueues on Redis
    row = DecisionDelivery.objects.get(request=request)
    assert wait_for(lambda: DecisionDelivery.objects.get(pk=row.pk).status == DeliveryStatus.DELIVERED)
    assert len(receiver.received) == 1 and receiver.received[0]["signed"]
    assert RequestEvent.objects.filter(request=request, kind=EventKind.DELIVERED).count() == 1
