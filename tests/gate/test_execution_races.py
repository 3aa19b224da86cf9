"""Reports of a CI run racing the approval's expiry, on PostgreSQL with real threads.

A report waits for the request's row lock while the expiry holds it; when it gets the lock the
request has expired. The report must be judged by the clock read after the lock (unauthorized), not
by a time read before it (which called it authorized while the request stays expired).
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from deployments.choices import ExecutionStatus, RequestStatus
from deployments.gate import services
from deployments.gate.services.common import _expire_locked
from deployments.models import DeploymentRequest, Execution
from tests import factories
from tests.services_required import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def backends_waiting_on_a_lock() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


def expire_while_a_report_waits(request: DeploymentRequest, report, *, expires_in: float = 0.6):
    """Hold the request's lock, start ``report`` in a thread (it blocks on the lock), let the approval
    lapse, expire the request as the sweeper would and commit; returns what the report returned."""
    DeploymentRequest.objects.filter(pk=request.pk).update(
        approval_expires_at=timezone.now() + timedelta(seconds=expires_in)
    )
    outcome: dict = {}
    holding = threading.Event()
    release = threading.Event()

    def holder():
        try:
            with transaction.atomic():
                row = (
                    DeploymentRequest.objects.select_for_update(no_key=True, of=("self",))
                    .select_related("environment")
                    .get(pk=request.pk)
                )
                holding.set()
                release.wait(30)
                _expire_locked(row, actor=None, reason="The approval went stale: the deployment did not start in time.")
        finally:
            connections.close_all()

    def reporter():
        try:
            outcome["execution"] = report()
        except Exception as exc:  # noqa: BLE001 - shown by the assertion below
            outcome["error"] = exc
        finally:
            connections.close_all()

    holding_thread = threading.Thread(target=holder)
    holding_thread.start()
    assert holding.wait(30)
    report_thread = threading.Thread(target=reporter)
    report_thread.start()
    assert wait_for(lambda: backends_waiting_on_a_lock() >= 1, timeout=20), "the report never waited for the lock"
    time.sleep(expires_in + 0.2)  # the approval lapses while the report waits
    release.set()
    holding_thread.join(30)
    report_thread.join(30)
    assert "error" not in outcome, outcome.get("error")
    return outcome["execution"]


def test_a_report_that_waited_behind_the_expiry_is_judged_after_it(postgres, rounds=3):
    environment = factories.make_environment(name="straddle")
    requester = factories.engineer(environment)
    approver = factories.approver(environment)
    bot = factories.UserFactory(username="ci-straddle", is_service_account=True)
    for number in range(rounds):
        request = services.submit_request(
            actor=requester, environment=environment, sha=factories.sha(f"straddle-{number}"), ref="main"
        )
        factories.approve(request, approver)
        request.refresh_from_db()
        assert request.status == RequestStatus.APPROVED
        run = f"run-straddle-{number}"

        def started(request=request, run=run):
            return services.report_execution(
                actor=bot,
                environment=environment,
                sha=request.sha,
                status=ExecutionStatus.IN_PROGRESS,
                request=request,
                external_id=run,
            )

        first = expire_while_a_report_waits(request, started)
        assert not first.authorized, "a run that started after the approval lapsed was called authorized"
        services.report_execution(
            actor=bot,
            environment=environment,
            sha=request.sha,
            status=ExecutionStatus.SUCCESS,
            request=request,
            external_id=run,
        )
        request.refresh_from_db()
        execution = Execution.objects.get(environment=environment, external_id=run)
        # One story: an authorized run moved the request along; a request left expired means the
        # run was not authorized, and says why.
        assert request.status == RequestStatus.EXPIRED, number
        assert not execution.authorized, (number, execution.started_at, request.approval_expires_at)
        assert execution.flag_reason
        assert execution.started_at >= request.approval_expires_at
