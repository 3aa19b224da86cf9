"""The one outbox mechanism (portal/outbox.py) on real tables, in both of its lease modes: a due-time
lease (the decision outbox's ``next_attempt_at``) and a claimed state (a notification "sending")."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.db.models import Q
from django.utils import timezone

from deployments.choices import DeliveryDecision, DeliveryStatus
from deployments.models import DecisionDelivery
from deployments.notifications.models import NotificationChannel, NotificationKind, NotificationLog, NotificationStatus
from portal.outbox import Outbox
from portal.retry import RetryPolicy

pytestmark = pytest.mark.django_db

LEASE = timedelta(minutes=5)
POLICY = RetryPolicy(max_attempts=3, base_seconds=10, cap_seconds=60, retry_after_cap_seconds=300)

DUE = Outbox(
    model=DecisionDelivery, ready=(DeliveryStatus.PENDING,), failed=DeliveryStatus.FAILED,
    due_field="next_attempt_at", failed_at_field="failed_at", lease=LEASE, policy=POLICY,
)
CLAIMED = Outbox(
    model=NotificationLog, ready=(NotificationStatus.PENDING,), claimed=NotificationStatus.SENDING,
    claimed_at_field="last_attempt_at", failed=NotificationStatus.FAILED, lease=lambda: LEASE, policy=lambda: POLICY,
)


@pytest.fixture
def request_row(submit):
    return submit()


@pytest.fixture
def make_delivery(request_row):
    def make(provider="one", *, due=None, status=DeliveryStatus.PENDING):
        return DecisionDelivery.objects.create(
            request=request_row, provider=provider, decision=DeliveryDecision.APPROVED, status=status,
            next_attempt_at=due or timezone.now(),
        )

    return make


@pytest.fixture
def make_log(request_row):
    def make(recipient="a@example.com", **fields):
        return NotificationLog.objects.create(
            request=request_row, kind=NotificationKind.AWAITING, channel=NotificationChannel.EMAIL,
            recipient=recipient, **fields,
        )

    return make


# --- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize("fields, problem", [
    ({"ready": ("pending",)}, "neither"),
    ({"ready": ("pending",), "claimed": "sending"}, "stamps the claim"),
    ({"ready": ("pending", "sending"), "claimed": "sending", "claimed_at_field": "last_attempt_at"}, "cannot also"),
    ({"ready": (), "due_field": "next_attempt_at"}, "at least one"),
])
def test_an_outbox_that_cannot_hold_a_lease_is_refused(fields, problem):
    with pytest.raises(ValueError, match=problem):
        Outbox(model=NotificationLog, failed="failed", lease=LEASE, policy=POLICY, **fields)


# --- claim --------------------------------------------------------------------------------------


def test_a_due_row_is_claimed_once_and_its_due_time_becomes_the_lease_end(make_delivery):
    now = timezone.now()
    row = make_delivery(due=now)
    assert DUE.claim(row.pk, now=now - timedelta(seconds=1)) is False  # not due yet
    assert DUE.claim(row.pk, now=now) is True
    row.refresh_from_db()
    assert (row.status, row.attempts, row.next_attempt_at) == (DeliveryStatus.PENDING, 1, now + LEASE)
    assert DUE.claim(row.pk, now=now + LEASE - timedelta(seconds=1)) is False  # the lease holds
    assert DUE.claim(row.pk, now=now + LEASE) is True  # the worker died: the lease ended
    row.refresh_from_db()
    assert row.attempts == 2


def test_an_ended_or_missing_row_is_never_claimed(make_delivery):
    row = make_delivery(status=DeliveryStatus.DELIVERED)
    assert DUE.claim(row.pk) is False
    assert DUE.claim(row.pk + 1000) is False
    assert DecisionDelivery.objects.get(pk=row.pk).attempts == 0


def test_a_claim_moves_the_row_to_the_claimed_state_until_the_lease_ends(make_log):
    log = make_log()
    now = timezone.now()
    assert CLAIMED.claim(log.pk, now=now) is True
    log.refresh_from_db()
    assert (log.status, log.attempts, log.last_attempt_at) == (NotificationStatus.SENDING, 1, now)
    assert CLAIMED.claim(log.pk, now=now + LEASE - timedelta(seconds=1)) is False
    assert CLAIMED.claim(log.pk, now=now + LEASE) is True
    log.refresh_from_db()
    assert (log.attempts, log.last_attempt_at) == (2, now + LEASE)


def test_release_hands_back_only_a_row_that_is_still_claimed(make_log):
    log = make_log()
    CLAIMED.claim(log.pk)
    assert CLAIMED.release(log.pk, to=NotificationStatus.PENDING, last_error="busy") is True
    log.refresh_from_db()
    assert (log.status, log.last_error) == (NotificationStatus.PENDING, "busy")
    assert CLAIMED.release(log.pk, to=NotificationStatus.PENDING) is False  # not claimed any more
    with pytest.raises(ValueError, match="not a claimable state"):
        CLAIMED.release(log.pk, to=NotificationStatus.SENT)
    with pytest.raises(ValueError, match="due-time lease"):
        DUE.release(log.pk, to=DeliveryStatus.PENDING)


# --- retry --------------------------------------------------------------------------------------


def test_the_next_attempt_follows_the_retry_policy_with_retry_after_as_a_floor():
    now = timezone.now()
    for attempts, step in [(1, 10), (2, 20), (3, 40), (4, 60), (9, 60)]:
        when, delay = DUE.next_attempt(attempts, now=now)
        assert step / 2 <= delay <= step and when == now + timedelta(seconds=delay)
    assert DUE.next_attempt(1, now=now, retry_after=200)[1] == 200
    assert DUE.retry_delay(1, retry_after=10_000) == 300  # the floor is capped too
    assert (DUE.exhausted(2), DUE.exhausted(3)) == (False, True)


def test_a_policy_given_as_a_callable_is_read_at_each_use(settings):
    settings.PORTAL_DELIVERY_MAX_ATTEMPTS = 2
    outbox = Outbox(model=DecisionDelivery, ready=("pending",), failed="failed", due_field="next_attempt_at",
                    lease=LEASE, policy=lambda: RetryPolicy(settings.PORTAL_DELIVERY_MAX_ATTEMPTS, 1, 1))
    assert outbox.exhausted(2)
    settings.PORTAL_DELIVERY_MAX_ATTEMPTS = 5
    assert not outbox.exhausted(2)


# --- sweep --------------------------------------------------------------------------------------


def test_the_sweeper_finds_due_rows_in_order_within_the_limit(make_delivery):
    now = timezone.now()
    late = make_delivery("late", due=now - timedelta(minutes=1))
    early = make_delivery("early", due=now - timedelta(minutes=9))
    make_delivery("future", due=now + timedelta(minutes=1))
    make_delivery("done", due=now - timedelta(hours=1), status=DeliveryStatus.DELIVERED)
    assert DUE.due_ids(now=now, order_by=("next_attempt_at", "id")) == [early.pk, late.pk]
    assert DUE.due_ids(now=now, order_by=("next_attempt_at", "id"), limit=1) == [early.pk]
    enqueued = []
    assert DUE.sweep(enqueue=enqueued.append, now=now, order_by=("next_attempt_at",)) == 2
    assert enqueued == [early.pk, late.pk]


def test_the_sweeper_adds_claims_whose_lease_ended_to_what_the_caller_calls_overdue(make_log):
    now = timezone.now()
    waiting = make_log("waiting@example.com")  # pending, fresh: its own task may still come
    forgotten = make_log("forgotten@example.com", attempts=1, last_attempt_at=now - timedelta(hours=3))
    alive = make_log("alive@example.com", status=NotificationStatus.SENDING, last_attempt_at=now - timedelta(minutes=1))
    dead = make_log("dead@example.com", status=NotificationStatus.SENDING, last_attempt_at=now - LEASE)
    make_log("sent@example.com", status=NotificationStatus.SENT, last_attempt_at=now - timedelta(days=1))
    overdue = Q(status=NotificationStatus.PENDING, last_attempt_at__lte=now - timedelta(hours=2))
    assert sorted(CLAIMED.due_ids(now=now, overdue=overdue)) == sorted([forgotten.pk, dead.pk])
    # Without "overdue", every claimable row is due (nothing holds a ready row back).
    assert sorted(CLAIMED.due_ids(now=now)) == sorted([waiting.pk, forgotten.pk, dead.pk])
    assert alive.pk not in CLAIMED.due_ids(now=now)


# --- give up ------------------------------------------------------------------------------------


def test_giving_up_marks_a_live_row_failed_and_alerts_after_commit(make_delivery, django_capture_on_commit_callbacks):
    row, done = make_delivery("one"), make_delivery("two", status=DeliveryStatus.DELIVERED)
    alerts = []
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert DUE.give_up(row.pk, now=now, alert=lambda: alerts.append(row.pk), last_error="gone") is True
        assert DUE.give_up(done.pk, now=now, alert=lambda: alerts.append(done.pk)) is False  # already ended
    assert alerts == [] and len(callbacks) == 1  # nothing is said before the failure is committed
    callbacks[0]()
    assert alerts == [row.pk]
    row.refresh_from_db()
    assert (row.status, row.failed_at, row.last_error) == (DeliveryStatus.FAILED, now, "gone")
    assert DecisionDelivery.objects.get(pk=done.pk).status == DeliveryStatus.DELIVERED


def test_giving_up_a_claimed_row_works_too_and_a_rolled_back_give_up_alerts_nobody(make_log):
    log = make_log()
    CLAIMED.claim(log.pk)
    alerts = []
    with pytest.raises(RuntimeError), transaction.atomic():
        CLAIMED.give_up(log.pk, alert=lambda: alerts.append("rolled back"))
        raise RuntimeError("the caller's transaction fails")
    assert alerts == [] and NotificationLog.objects.get(pk=log.pk).status == NotificationStatus.SENDING
    assert CLAIMED.give_up(log.pk) is True
    assert NotificationLog.objects.get(pk=log.pk).status == NotificationStatus.FAILED


def test_giving_up_a_locked_row_sets_it_for_the_callers_save(make_delivery, django_capture_on_commit_callbacks):
    row = make_delivery()
    now = timezone.now()
    alerts = []
    with django_capture_on_commit_callbacks(execute=True):
        DUE.give_up_row(row, now=now, alert=lambda: alerts.append(row.pk))
        assert DecisionDelivery.objects.get(pk=row.pk).status == DeliveryStatus.PENDING  # not saved yet
        row.save()
    assert (row.status, row.failed_at) == (DeliveryStatus.FAILED, now)
    assert DecisionDelivery.objects.get(pk=row.pk).status == DeliveryStatus.FAILED and alerts == [row.pk]


# --- two workers at once (PostgreSQL) -----------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("outbox", ["due", "claimed"])
def test_ten_workers_claiming_one_row_at_once_give_one_attempt(postgres, outbox, make_delivery, make_log):
    assert connection.vendor == "postgresql"
    box, row = (DUE, make_delivery()) if outbox == "due" else (CLAIMED, make_log())
    now = timezone.now()
    barrier = threading.Barrier(10)
    results = []

    def worker():
        try:
            barrier.wait(timeout=30)
            results.append(box.claim(row.pk, now=now))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(results) == [False] * 9 + [True]
    row.refresh_from_db()
    assert row.attempts == 1
