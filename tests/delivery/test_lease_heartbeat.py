"""A running delivery attempt renews its short lease; one that loses it stops (PostgreSQL, real threads).

The receiver is a real local server trickling its answer one byte a second, so the attempt outlives
its lease; the renewals are made by the attempt's heartbeat thread on its own database connection.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connections
from django.db.models import F
from django.utils import timezone

from deployments.choices import AttemptOutcome, DeliveryStatus
from deployments.delivery import outbox
from deployments.models import DecisionDelivery, DeliveryAttempt, WebhookEndpoint
from tests import factories
from tests.delivery.test_deadline import TricklingReceiver
from tests.delivery.test_delivery import configure_webhook
from tests.services_required import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def trickling():
    receiver = TricklingReceiver(length=30)
    yield receiver
    receiver.close()


def _attempt_in_a_thread(delivery_id):
    result = {}

    def run():
        try:
            result["row"] = outbox.attempt_delivery(delivery_id=delivery_id)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def _approved_delivery(environment, submit, approvers, url):
    """An approval's delivery, due now, not yet attempted at ``url`` (tasks run eagerly in tests: the
    approval's own attempt goes to a closed port and fails at once, then the endpoint moves)."""
    endpoint = configure_webhook(environment, "http://127.0.0.1:9/hook")
    request = submit()
    factories.approve(request, approvers[0])
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(url=url)
    row = DecisionDelivery.objects.get(request=request)
    DecisionDelivery.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now())
    DeliveryAttempt.objects.filter(delivery=row).delete()
    row.refresh_from_db()
    return row


def test_an_attempt_longer_than_its_lease_keeps_the_row_and_is_not_claimed_twice(
    postgres, settings, trickling, environment, submit, approvers
):
    settings.PORTAL_DELIVERY_LEASE_SECONDS = 3  # renewed every second
    settings.PORTAL_HTTP_DEADLINE = 6
    row = _approved_delivery(environment, submit, approvers, trickling.url)
    started = time.monotonic()
    thread, _ = _attempt_in_a_thread(row.pk)
    assert wait_for(lambda: DeliveryAttempt.objects.filter(delivery=row).exists(), timeout=10)
    # Past the first lease's end the attempt is still running, and nobody may claim or sweep its row.
    time.sleep(max(0.0, started + 4.5 - time.monotonic()))
    assert thread.is_alive()
    assert row.pk not in outbox.due_delivery_ids()
    assert not outbox.DELIVERIES.claim(row.pk)
    thread.join(30)
    attempts = list(DeliveryAttempt.objects.filter(delivery=row))
    assert len(attempts) == 1
    assert attempts[0].outcome == AttemptOutcome.ABANDONED and "6 s deadline" in attempts[0].error
    row.refresh_from_db()
    assert row.status == DeliveryStatus.PENDING and row.attempts == 2  # the closed port's, then this one


def test_an_attempt_that_lost_its_lease_to_another_claim_stops_at_once(
    postgres, settings, trickling, environment, submit, approvers
):
    settings.PORTAL_DELIVERY_LEASE_SECONDS = 3
    settings.PORTAL_HTTP_DEADLINE = 20
    row = _approved_delivery(environment, submit, approvers, trickling.url)
    started = time.monotonic()
    thread, _ = _attempt_in_a_thread(row.pk)
    assert wait_for(lambda: DeliveryAttempt.objects.filter(delivery=row).exists(), timeout=10)
    # Another worker's claim counted a new attempt (as after a lease that lapsed while this one paused).
    DecisionDelivery.objects.filter(pk=row.pk).update(attempts=F("attempts") + 1)
    thread.join(30)
    elapsed = time.monotonic() - started
    assert elapsed < 10, elapsed  # stopped at its next renewal (1 s), long before its 20 s deadline
    assert trickling.cut_off.wait(5)
    attempt = DeliveryAttempt.objects.get(delivery=row)
    assert attempt.outcome == AttemptOutcome.ABANDONED
    assert "could not renew its lease" in attempt.error


def test_a_renewal_only_extends_the_attempt_that_holds_the_row(postgres, environment, submit, approvers):
    row = _approved_delivery(environment, submit, approvers, "http://127.0.0.1:9/hook")
    assert outbox.DELIVERIES.claim(row.pk)
    row.refresh_from_db()
    assert outbox.DELIVERIES.renew(row.pk, attempts=row.attempts)
    assert not outbox.DELIVERIES.renew(row.pk, attempts=row.attempts - 1)  # an earlier, superseded attempt
    DecisionDelivery.objects.filter(pk=row.pk).update(status=DeliveryStatus.DELIVERED)
    assert not outbox.DELIVERIES.renew(row.pk, attempts=row.attempts)  # the row ended
