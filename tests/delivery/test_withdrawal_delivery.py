"""A withdrawn approval (cancel, supersede, expiry) is never delivered as a bare approval: an undelivered
one is withheld (checked when a worker claims it, on the server), and CI that may have it is sent a
signed withdrawal."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from compliance.errors import RuleViolation
from deployments.choices import DeliveryDecision, DeliveryStatus, RequestStatus
from deployments.delivery import outbox as delivery
from deployments.gate import services
from deployments.models import DecisionDelivery, DeploymentRequest
from tests import factories
from tests.delivery.test_delivery import Receiver, approve_one, configure_webhook, run_until_settled

pytestmark = pytest.mark.django_db


def approval_row(request) -> DecisionDelivery:
    return DecisionDelivery.objects.get(request=request, decision=DeliveryDecision.APPROVED)


def test_an_undelivered_approval_is_never_sent_after_a_cancel(httpserver, environment, submit, approvers, requester):
    receiver = Receiver(httpserver, [200])
    configure_webhook(environment, receiver.url)
    request = approve_one(submit, approvers)
    services.cancel_request(actor=requester, request=request, reason="Wrong commit.")
    row = approval_row(request)
    assert row.status == DeliveryStatus.WITHDRAWN and "withdrawn" in row.last_error
    assert delivery.attempt_delivery(delivery_id=row.pk) is None
    assert receiver.received == []
    # Nothing reached CI, so there is nothing to withdraw there; the wait ends with "no".
    assert not DecisionDelivery.objects.filter(request=request, decision=DeliveryDecision.WITHDRAWN).exists()
    rejection = DecisionDelivery.objects.get(request=request, decision=DeliveryDecision.REJECTED)
    assert run_until_settled(rejection).status == DeliveryStatus.DELIVERED
    assert [(r["body"]["decision"], r["body"]["request"]["status"]) for r in receiver.received] == [
        ("rejected", "cancelled")
    ]


def test_ci_that_has_the_approval_gets_a_signed_withdrawal_with_the_newer_request(
    httpserver, environment, submit, approvers
):
    services.update_policy(actor=None, approval_policy=environment.policy, newer_request_withdraws_approvals=True)
    receiver = Receiver(httpserver, [200])
    configure_webhook(environment, receiver.url)
    request = approve_one(submit, approvers)
    assert run_until_settled(approval_row(request)).status == DeliveryStatus.DELIVERED
    newer = submit()
    withdrawal = DecisionDelivery.objects.get(request=request, decision=DeliveryDecision.WITHDRAWN)
    assert run_until_settled(withdrawal).status == DeliveryStatus.DELIVERED
    approval, withdrawn = receiver.received
    assert approval["body"]["decision"] == "approved"
    assert withdrawn["signed"]
    body = withdrawn["body"]
    assert body["event"] == "deployment.withdrawn" and body["decision"] == "withdrawn" and body["approved"] is False
    assert body["request"]["status"] == "superseded"
    assert body["request"]["superseded_by"].endswith(f"/requests/{newer.pk}/")


def test_an_approval_whose_first_attempt_failed_is_withdrawn_everywhere_it_may_have_gone(
    httpserver, environment, submit, approvers, requester
):
    """A 503 may still have been acted on: the withdrawal goes out, and the retry of the approval
    is withheld at claim time."""
    receiver = Receiver(httpserver, [503, 200])
    configure_webhook(environment, receiver.url)
    request = approve_one(submit, approvers)
    row = approval_row(request)
    delivery.attempt_delivery(delivery_id=row.pk)
    row.refresh_from_db()
    assert row.status == DeliveryStatus.PENDING and row.attempts == 1
    services.cancel_request(actor=requester, request=request)
    row.refresh_from_db()
    assert delivery.attempt_delivery(delivery_id=row.pk, now=row.next_attempt_at) is None
    row.refresh_from_db()
    assert row.status == DeliveryStatus.WITHDRAWN and "cancelled" in row.last_error
    withdrawal = DecisionDelivery.objects.get(request=request, decision=DeliveryDecision.WITHDRAWN)
    assert run_until_settled(withdrawal).status == DeliveryStatus.DELIVERED
    assert [r["body"]["decision"] for r in receiver.received] == ["approved", "withdrawn"]


def test_an_approval_that_went_stale_before_it_was_sent_is_withheld(httpserver, environment, submit, approvers):
    receiver = Receiver(httpserver, [200])
    configure_webhook(environment, receiver.url)
    request = approve_one(submit, approvers)
    DeploymentRequest.objects.filter(pk=request.pk).update(approval_expires_at=timezone.now() - timedelta(seconds=1))
    assert delivery.attempt_delivery(delivery_id=approval_row(request).pk) is None
    assert approval_row(request).status == DeliveryStatus.WITHDRAWN
    assert receiver.received == []


def test_a_rejection_still_ends_the_wait_of_a_superseded_request(httpserver, environment, submit):
    configure_webhook(environment, "http://127.0.0.1:9/hook")
    first = submit()
    submit()
    row = DecisionDelivery.objects.get(request=first)
    assert row.decision == DeliveryDecision.REJECTED
    assert row.payload["request"]["status"] == "superseded"


# --- on PostgreSQL, with real threads: the claim and the cancel race -----------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_approval_racing_its_cancel_never_leaves_ci_with_a_bare_approval(postgres, httpserver):
    environment = factories.make_environment(name="race")
    requester = factories.engineer(environment)
    approver = factories.approver(environment)
    receiver = Receiver(httpserver, [200])
    configure_webhook(environment, receiver.url)
    requests = []
    for round_number in range(30):
        request = services.submit_request(
            actor=requester, environment=environment, sha=factories.sha(f"withdraw-race-{round_number}"), ref="main"
        )
        factories.approve(request, approver)
        row = approval_row(request)
        barrier = threading.Barrier(2)
        errors = []

        def attempt(row_id=row.pk):
            try:
                barrier.wait(timeout=30)
                delivery.attempt_delivery(delivery_id=row_id)
            except Exception as exc:
                errors.append(repr(exc))
            finally:
                connections.close_all()

        def cancel(request=request):
            try:
                barrier.wait(timeout=30)
                services.cancel_request(actor=requester, request=request)
            except RuleViolation as exc:
                errors.append(exc.code)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=attempt), threading.Thread(target=cancel)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == [], errors
        requests.append(request)
    for row in DecisionDelivery.objects.exclude(decision=DeliveryDecision.APPROVED):
        run_until_settled(row)
    got = {}
    for received in receiver.received:
        got.setdefault(received["body"]["request"]["id"], []).append(received["body"]["decision"])
    for request in requests:
        request.refresh_from_db()
        assert request.status == RequestStatus.CANCELLED
        seen = got.get(request.pk, [])
        # Either the approval never left (and the wait ended with "no"), or CI was told it is withdrawn.
        assert seen in (["rejected"], ["approved", "withdrawn"]), (request.pk, seen)
        assert approval_row(request).status in (DeliveryStatus.WITHDRAWN, DeliveryStatus.DELIVERED)
