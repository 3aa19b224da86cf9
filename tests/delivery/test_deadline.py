"""Every delivery attempt has a total deadline; a short lease, renewed while the attempt runs, holds it.

The receiver is a real local HTTP server that answers its headers at once and then trickles the
body one byte a second: each socket read succeeds within the per-read timeout, so only a wall-clock
deadline ends the attempt.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
import requests

from deployments.choices import AttemptOutcome, DeliveryStatus
from deployments.delivery import outbox
from deployments.models import DecisionDelivery, DeliveryAttempt
from portal.deadline import Deadline
from tests import factories
from tests.delivery.test_delivery import configure_webhook
from tests.portal.test_settings import manage

pytestmark = pytest.mark.django_db


class TricklingReceiver:
    """Reads a request, sends ``200`` headers announcing ``length`` bytes, then one byte a second."""

    def __init__(self, length: int = 30) -> None:
        self.length = length
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        self.sent: list[int] = []  # body bytes sent per connection before it ended
        self.cut_off = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        sent = 0
        try:
            conn.recv(65536)
            conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {self.length}\r\n\r\n".encode())
            for _ in range(self.length):
                time.sleep(1)
                conn.sendall(b"x")
                sent += 1
        except OSError:
            self.cut_off.set()
        finally:
            self.sent.append(sent)
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def trickling():
    receiver = TricklingReceiver()
    yield receiver
    receiver.close()


def test_a_trickling_answer_is_cut_off_at_the_deadline_and_the_attempt_abandoned(
    settings, trickling, environment, submit, approvers
):
    settings.PORTAL_HTTP_TIMEOUT = 2  # each byte arrives well within this
    settings.PORTAL_HTTP_DEADLINE = 3
    configure_webhook(environment, trickling.url)
    request = submit()
    factories.approve(request, approvers[0])
    row = DecisionDelivery.objects.get(request=request)
    outbox.attempt_delivery(delivery_id=row.pk)
    row.refresh_from_db()
    assert row.status == DeliveryStatus.PENDING  # to be retried, not delivered and not failed
    attempt = DeliveryAttempt.objects.get(delivery=row)
    assert attempt.outcome == AttemptOutcome.ABANDONED
    assert "3 s deadline" in attempt.error and attempt.finished_at is not None
    # The portal closed the connection while the receiver was still sending.
    assert trickling.cut_off.wait(5)
    assert trickling.sent and trickling.sent[0] < trickling.length
    # Its next attempt is due after a backoff.
    assert row.next_attempt_at > attempt.finished_at


def test_a_deadline_cuts_off_a_connection_opened_inside_it():
    receiver = TricklingReceiver(length=20)
    try:
        from portal import outbound

        with Deadline(1.5) as limit, outbound.session() as http, pytest.raises(requests.RequestException):
            http.get(receiver.url, timeout=5)
        assert limit.expired
        assert receiver.cut_off.wait(5)
    finally:
        receiver.close()


def test_a_lease_shorter_than_its_renewal_minimum_is_refused_at_start():
    result = manage("check", env={"DJANGO_DEBUG": "1", "PORTAL_DELIVERY_LEASE_SECONDS": "2"})
    assert result.returncode != 0
    assert "PORTAL_DELIVERY_LEASE_SECONDS" in result.stderr
    # A deadline longer than the lease is fine: the running attempt renews its lease.
    ok = manage("check", env={"DJANGO_DEBUG": "1", "PORTAL_HTTP_DEADLINE": "60", "PORTAL_DELIVERY_LEASE_SECONDS": "10"})
    assert ok.returncode == 0, ok.stderr


def test_an_attempt_whose_worker_died_is_claimable_again_within_thirty_seconds(
    settings, environment, submit, approvers
):
    """The lease does not grow with the deadline (the attempt renews it), and the sweeper runs often
    enough: a worker killed at the start of an attempt leaves a row retried within 30 s, claimed once."""
    from datetime import timedelta

    settings.PORTAL_HTTP_DEADLINE = 60  # a slow CI host allowed a minute; recovery still within 30 s
    sweep_every = settings.CELERY_BEAT_SCHEDULE["sweep-decision-deliveries"]["schedule"]
    assert outbox.lease_seconds() + sweep_every <= 30
    configure_webhook(environment, "http://127.0.0.1:9/hook")
    request = submit()
    factories.approve(request, approvers[0])
    row = DecisionDelivery.objects.get(request=request)
    started = row.next_attempt_at
    assert outbox.DELIVERIES.claim(row.pk, now=started)  # the worker claims, then dies
    assert not outbox.DELIVERIES.claim(row.pk, now=started + timedelta(seconds=outbox.lease_seconds() - 1))
    assert row.pk not in outbox.due_delivery_ids(now=started + timedelta(seconds=outbox.lease_seconds() - 1))
    lease_end = started + timedelta(seconds=outbox.lease_seconds())
    assert row.pk in outbox.due_delivery_ids(now=lease_end)
    assert outbox.DELIVERIES.claim(row.pk, now=lease_end)  # exactly one of the later claims wins
    assert not outbox.DELIVERIES.claim(row.pk, now=lease_end)
