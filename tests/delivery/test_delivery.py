"""Decision delivery through the outbox, against a real local HTTP receiver (pytest-httpserver)."""

from __future__ import annotations

import json
import socket
import time

import pytest
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from werkzeug import Response

from compliance.errors import RuleViolation
from compliance.people.roles import Role
from deployments import tasks
from deployments.choices import AttemptOutcome, DeliveryStatus, EventKind, RequestStatus
from deployments.delivery import outbox as delivery
from deployments.delivery.providers import webhook
from deployments.delivery.secrets import decrypt_secret, encrypt_secret
from deployments.gate import services
from deployments.models import DecisionDelivery, DeliveryAttempt, RequestEvent, WebhookEndpoint
from tests import factories

pytestmark = pytest.mark.django_db

SECRET = "whsec-test-0123456789"


def configure_webhook(environment, url, secret=SECRET):
    return WebhookEndpoint.objects.create(environment=environment, url=url, secret_ciphertext=encrypt_secret(secret))


@pytest.fixture
def administrator(db):
    return factories.UserFactory(username="ada-admin", email="ada@example.com", roles=[Role.ADMINISTRATOR])


class Receiver:
    """A CI endpoint that answers with the given statuses in turn and verifies every signature."""

    def __init__(self, httpserver, statuses, headers=None):
        self.statuses = list(statuses)
        self.headers = headers or {}
        self.received = []
        httpserver.expect_request("/hook", method="POST").respond_with_handler(self)
        self.url = httpserver.url_for("/hook")

    def __call__(self, request):
        body = request.get_data()
        self.received.append(
            {
                "body": json.loads(body),
                "signed": webhook.verify(SECRET, body, request.headers.get(webhook.SIGNATURE_HEADER, "")),
                "delivery": request.headers.get("X-Portal-Delivery"),
            }
        )
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return Response("ok" if status < 300 else "try later", status=status, headers=self.headers)


def run_until_settled(delivery_row, limit=20):
    """Make each next attempt at the moment it is due (the time a worker would), until it settles."""
    for _ in range(limit):
        delivery_row.refresh_from_db()
        if delivery_row.status != DeliveryStatus.PENDING:
            return delivery_row
        delivery.attempt_delivery(delivery_id=delivery_row.pk, now=delivery_row.next_attempt_at)
    delivery_row.refresh_from_db()
    return delivery_row


def approve_one(submit, approvers):
    request = submit()
    assert request.status == RequestStatus.AWAITING_APPROVAL
    factories.approve(request, approvers[0])
    return request


def test_503_five_times_then_200_is_delivered_once_with_six_attempts(
    httpserver, environment, submit, approvers, django_capture_on_commit_callbacks
):
    receiver = Receiver(httpserver, [503, 503, 503, 503, 503, 200])
    configure_webhook(environment, receiver.url)
    with django_capture_on_commit_callbacks(execute=True):
        request = approve_one(submit, approvers)
    row = DecisionDelivery.objects.get(request=request)
    assert row.decision == "approved" and row.attempts == 1  # the on-commit task made the first attempt
    row = run_until_settled(row)
    assert row.status == DeliveryStatus.DELIVERED
    assert row.attempts == 6 and row.last_status_code == 200
    attempts = list(DeliveryAttempt.objects.filter(delivery=row))
    assert [a.status_code for a in attempts] == [503] * 5 + [200]
    assert [a.outcome for a in attempts] == [AttemptOutcome.RETRY] * 5 + [AttemptOutcome.DELIVERED]
    assert len(receiver.received) == 6 and all(r["signed"] for r in receiver.received)
    assert {r["delivery"] for r in receiver.received} == {str(row.pk)}
    assert receiver.received[-1]["body"]["decision"] == "approved"
    assert receiver.received[-1]["body"]["request"]["sha"] == request.sha
    assert RequestEvent.objects.filter(request=request, kind=EventKind.DELIVERED).count() == 1
    # Another attempt after delivery does nothing.
    assert delivery.attempt_delivery(delivery_id=row.pk, now=row.next_attempt_at) is None
    assert len(receiver.received) == 6


def test_backoff_grows_and_is_capped(settings):
    settings.PORTAL_DELIVERY_BACKOFF_SECONDS = 10
    settings.PORTAL_DELIVERY_BACKOFF_CAP_SECONDS = 100
    for attempts, upper in [(1, 10), (2, 20), (3, 40), (4, 80), (5, 100), (12, 100)]:
        delay = delivery.backoff_seconds(attempts)
        assert upper / 2 <= delay <= upper
    assert delivery.backoff_seconds(1, retry_after=500) == 500


def test_retry_after_from_the_receiver_is_honoured(httpserver, environment, submit, approvers, settings):
    settings.PORTAL_DELIVERY_BACKOFF_SECONDS = 1
    receiver = Receiver(httpserver, [429, 200], headers={"Retry-After": "120"})
    configure_webhook(environment, receiver.url)
    request = approve_one(submit, approvers)
    row = DecisionDelivery.objects.get(request=request)
    delivery.attempt_delivery(delivery_id=row.pk, now=row.next_attempt_at)
    row.refresh_from_db()
    attempt = DeliveryAttempt.objects.get(delivery=row)
    assert attempt.status_code == 429 and row.status == DeliveryStatus.PENDING
    assert (row.next_attempt_at - attempt.finished_at).total_seconds() >= 120


def closed_port_url():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}/hook"


def test_a_receiver_down_past_the_budget_fails_the_delivery_and_alerts_administrators(
    environment, submit, approvers, administrator, settings, mailoutbox, django_capture_on_commit_callbacks
):
    settings.PORTAL_DELIVERY_MAX_ATTEMPTS = 3
    factories.UserFactory(username="former-admin", email="gone@example.com", roles=[Role.ADMINISTRATOR],
                          is_active=False)
    configure_webhook(environment, closed_port_url())
    request = approve_one(submit, approvers)
    row = DecisionDelivery.objects.get(request=request)
    with django_capture_on_commit_callbacks(execute=True):
        row = run_until_settled(row)
    assert row.status == DeliveryStatus.FAILED and row.failed_at is not None
    assert row.attempts == 3 and row.last_error == "connection refused"
    assert DeliveryAttempt.objects.filter(delivery=row, outcome=AttemptOutcome.FAILED).count() == 1
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["ada@example.com"]
    assert f"#{request.pk}" in mailoutbox[0].subject
    assert not RequestEvent.objects.filter(request=request, kind=EventKind.DELIVERED).exists()


def test_an_administrator_retries_a_failed_delivery(
    httpserver, environment, submit, approvers, administrator, settings, django_capture_on_commit_callbacks
):
    settings.PORTAL_DELIVERY_MAX_ATTEMPTS = 1
    receiver = Receiver(httpserver, [500, 200])
    configure_webhook(environment, receiver.url)
    request = approve_one(submit, approvers)
    row = run_until_settled(DecisionDelivery.objects.get(request=request))
    assert row.status == DeliveryStatus.FAILED
    with django_capture_on_commit_callbacks(execute=True):
        delivery.retry_delivery(actor=administrator, delivery=row)
    row.refresh_from_db()
    assert row.status == DeliveryStatus.DELIVERED
    assert DeliveryAttempt.objects.filter(delivery=row).count() == 2
    entry = LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(DecisionDelivery), object_pk=str(row.pk)
    ).order_by("timestamp", "pk")
    assert entry.exists()


def test_retrying_a_delivery_that_has_not_failed_is_refused(environment, submit, approvers, administrator):
    configure_webhook(environment, closed_port_url())
    request = approve_one(submit, approvers)
    row = DecisionDelivery.objects.get(request=request)
    with pytest.raises(RuleViolation) as exc:
        delivery.retry_delivery(actor=administrator, delivery=row)
    assert exc.value.code == "delivery_not_failed"


def test_a_permanent_refusal_fails_at_once(httpserver, environment, submit, approvers, administrator, mailoutbox,
                                          django_capture_on_commit_callbacks):
    receiver = Receiver(httpserver, [404])
    configure_webhook(environment, receiver.url)
    request = approve_one(submit, approvers)
    row = DecisionDelivery.objects.get(request=request)
    with django_capture_on_commit_callbacks(execute=True):
        row = run_until_settled(row)
    assert row.status == DeliveryStatus.FAILED and row.attempts == 1
    assert len(mailoutbox) == 1


def test_the_sweeper_delivers_when_the_process_died_between_commit_and_enqueue(
    httpserver, environment, submit, approvers
):
    receiver = Receiver(httpserver, [200])
    configure_webhook(environment, receiver.url)
    # No on-commit callbacks run here: as if the process was killed right after the commit.
    request = approve_one(submit, approvers)
    row = DecisionDelivery.objects.get(request=request)
    assert row.status == DeliveryStatus.PENDING and row.attempts == 0 and receiver.received == []
    assert tasks.sweep_deliveries() == 1
    row.refresh_from_db()
    assert row.status == DeliveryStatus.DELIVERED and len(receiver.received) == 1
    assert tasks.sweep_deliveries() == 0


def test_a_claimed_row_is_not_attempted_twice_and_a_dead_worker_is_recovered(httpserver, environment, submit,
                                                                             approvers):
    receiver = Receiver(httpserver, [200])
    configure_webhook(environment, receiver.url)
    request = approve_one(submit, approvers)
    row = DecisionDelivery.objects.get(request=request)
    claim = delivery._claim(row.pk, row.next_attempt_at)  # a worker claims it, then dies
    assert claim is not None
    assert delivery.attempt_delivery(delivery_id=row.pk, now=row.next_attempt_at) is None
    assert delivery.due_delivery_ids(now=row.next_attempt_at) == []
    row.refresh_from_db()
    later = row.next_attempt_at  # the lease has ended
    assert delivery.due_delivery_ids(now=later) == [row.pk]
    delivery.attempt_delivery(delivery_id=row.pk, now=later)
    row.refresh_from_db()
    assert row.status == DeliveryStatus.DELIVERED and len(receiver.received) == 1
    outcomes = list(DeliveryAttempt.objects.filter(delivery=row).values_list("outcome", flat=True))
    assert outcomes == [AttemptOutcome.ABANDONED, AttemptOutcome.DELIVERED]


def test_a_rejection_is_delivered_when_a_waiting_request_is_cancelled_or_superseded(
    httpserver, environment, submit, approvers, requester
):
    configure_webhook(environment, "http://127.0.0.1:9/hook")
    first = submit()
    second = submit()  # supersedes the first
    services.cancel_request(actor=requester, request=second, reason="Wrong commit.")
    rows = {r.request_id: r for r in DecisionDelivery.objects.all()}
    assert rows[first.pk].decision == "rejected" and "Superseded" in rows[first.pk].payload["reason"]
    assert rows[second.pk].decision == "rejected" and rows[second.pk].payload["reason"] == "Wrong commit."


def test_a_rejection_by_an_approver_is_delivered_and_nothing_follows_an_approval(
    environment, submit, approvers, requester
):
    configure_webhook(environment, "http://127.0.0.1:9/hook")
    rejected = submit()
    services.reject_request(actor=approvers[0], request=rejected, comment="Not during the launch.")
    assert DecisionDelivery.objects.get(request=rejected).decision == "rejected"
    approved = approve_one(submit, approvers)
    services.cancel_request(actor=requester, request=approved, reason="Changed my mind.")
    # The approval was never sent: it is withheld, and the waiting CI is told "no" instead.
    rows = dict(DecisionDelivery.objects.filter(request=approved).values_list("decision", "status"))
    assert rows == {"approved": "withdrawn", "rejected": "pending"}


def test_no_delivery_without_a_webhook(environment, submit, approvers):
    approve_one(submit, approvers)
    assert not DecisionDelivery.objects.exists()


def test_the_webhook_secret_is_encrypted_at_rest_and_absent_from_audit_diffs(environment):
    endpoint = configure_webhook(environment, "http://127.0.0.1:9/hook")
    stored = WebhookEndpoint.objects.values_list("secret_ciphertext", flat=True).get(pk=endpoint.pk)
    assert SECRET not in stored and decrypt_secret(stored) == SECRET
    for entry in LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(WebhookEndpoint)):
        assert SECRET not in json.dumps(entry.changes) and "secret_ciphertext" not in json.dumps(entry.changes)


def test_the_signature_verifies_only_fresh_and_untampered_bodies():
    body = b'{"decision":"approved"}'
    now = int(time.time())
    header = webhook.sign(SECRET, body, now)
    assert webhook.verify(SECRET, body, header, now=now)
    assert not webhook.verify(SECRET, body + b" ", header, now=now)
    assert not webhook.verify("other", body, header, now=now)
    assert not webhook.verify(SECRET, body, header, now=now + 3600)
    assert not webhook.verify(SECRET, body, "garbage", now=now)
