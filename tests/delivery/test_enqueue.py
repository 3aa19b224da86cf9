"""A broker outage never slows a decision: one fast publish after commit, then the sweeper's turn.

The broker is a real local TCP listener that takes each connection and closes it at once (as a
restarting Redis does), counting the attempts; and a loopback port nobody listens on.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading

import pytest
from django.utils import timezone
from pytest_httpserver import HTTPServer

from deployments.choices import DeliveryStatus, RequestStatus
from deployments.delivery import outbox
from deployments.models import DecisionDelivery
from deployments.tasks import deliver_decision
from portal import enqueue
from portal.celery import app
from tests import factories
from tests.delivery.test_delivery import Receiver, configure_webhook

pytestmark = pytest.mark.django_db


class BrokenBroker:
    """Accepts TCP connections and closes them at once; counts them."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def broker_down():
    """Celery publishes for real (not eagerly) to a broker that refuses every connection."""
    broker = BrokenBroker()
    with broker_at(f"redis://127.0.0.1:{broker.port}/0"):
        yield broker
    broker.close()


@contextlib.contextmanager
def broker_at(url: str):
    previous = app.conf.broker_url, app.conf.broker_write_url, app.conf.task_always_eager
    app.conf.broker_url = app.conf.broker_write_url = url
    app.conf.task_always_eager = False
    try:
        yield
    finally:
        app.conf.broker_url, app.conf.broker_write_url, app.conf.task_always_eager = previous


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_publish_connection_has_short_timeouts_and_no_retry(settings):
    settings.PORTAL_ENQUEUE_TIMEOUT_SECONDS = 0.5
    options = enqueue.publish_options()
    assert options["connect_timeout"] == 0.5
    transport = options["transport_options"]
    assert transport["max_retries"] == 0 and transport["retry_on_timeout"] is False
    assert transport["socket_connect_timeout"] == 0.5 and transport["socket_timeout"] == 0.5


def test_one_publish_is_one_connection_attempt_and_reports_failure(broker_down):
    assert enqueue.publish(deliver_decision, (1,)) is False
    assert broker_down.connections == 1  # no reconnect loop, no publish retry policy


def test_a_closed_broker_port_fails_the_publish_without_raising(settings):
    with broker_at(f"redis://127.0.0.1:{closed_port()}/0"):
        assert enqueue.publish(deliver_decision, (1,)) is False


def test_a_decision_with_the_broker_down_succeeds_and_leaves_the_delivery_to_the_sweeper(
    broker_down, httpserver: HTTPServer, environment, submit, approvers, django_capture_on_commit_callbacks, caplog
):
    receiver = Receiver(httpserver, [200])
    configure_webhook(environment, receiver.url)
    app.conf.task_always_eager = True
    request = submit()
    app.conf.task_always_eager = False
    caplog.set_level(logging.WARNING, logger="portal.enqueue")
    with django_capture_on_commit_callbacks(execute=True):
        factories.approve(request, approvers[0])
    request.refresh_from_db()
    assert request.status == RequestStatus.APPROVED
    row = DecisionDelivery.objects.get(request=request)
    assert row.status == DeliveryStatus.PENDING and row.attempts == 0
    assert row.next_attempt_at <= timezone.now()
    assert row.pk in outbox.due_delivery_ids()
    failed_publishes = [r for r in caplog.records if r.name == "portal.enqueue"]
    assert failed_publishes, "the decision's publishes were not attempted"
    # Each publish made exactly one connection attempt: none blocked in a retry loop.
    assert broker_down.connections == len(failed_publishes)
    assert receiver.received == []

    # The broker is back (eager here): the sweeper's enqueue delivers the decision.
    app.conf.task_always_eager = True
    assert outbox.sweep_deliveries() == 1
    assert DecisionDelivery.objects.get(pk=row.pk).status == DeliveryStatus.DELIVERED
    assert len(receiver.received) == 1
