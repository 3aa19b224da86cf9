"""Concurrency on PostgreSQL with real threads: the database decides, never timing."""

import threading

import pytest
from django.db import connection, connections

from compliance.errors import RuleViolation
from deployments.choices import EventKind, RequestStatus
from deployments.gate import services
from deployments.models import Approval, DeploymentRequest
from tests import factories

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _run_at_once(callables):
    barrier = threading.Barrier(len(callables))
    results, errors = [], []
    lock = threading.Lock()

    def runner(func):
        try:
            barrier.wait(timeout=30)
            outcome = func()
            with lock:
                results.append(outcome)
        except RuleViolation as exc:
            with lock:
                errors.append(exc.code)
        except Exception as exc:  # an unexpected error fails the test below
            with lock:
                errors.append(f"unexpected: {exc!r}")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=runner, args=(func,)) for func in callables]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results, errors


def test_twenty_approvers_at_once_give_exactly_one_approval(postgres):
    assert connection.vendor == "postgresql"
    environment = factories.make_environment(name="race")
    requester = factories.engineer(environment)
    people = [factories.approver(environment) for _ in range(20)]
    for round_number in range(50):
        request = services.submit_request(actor=requester, environment=environment,
                                          sha=factories.sha(f"race-{round_number}"), ref="main")
        checklist = factories.full_checklist(request)
        calls = [
            (lambda p=p: services.approve_request(actor=p, request=request, checklist=checklist))
            for p in people
        ]
        results, errors = _run_at_once(calls)
        request.refresh_from_db()
        assert request.status == RequestStatus.APPROVED, round_number
        assert len(results) == 1, (round_number, errors)
        assert Approval.objects.filter(request=request).count() == 1
        assert request.events.filter(kind=EventKind.APPROVED).count() == 1
        assert sorted(set(errors)) == ["already_decided"], errors
        assert request.refusals.count() == 19


def test_approve_racing_reject_ends_in_exactly_one_final_state(postgres):
    environment = factories.make_environment(name="race-2")
    requester = factories.engineer(environment)
    yes, no = factories.approver(environment), factories.approver(environment)
    outcomes = set()
    for round_number in range(30):
        request = services.submit_request(actor=requester, environment=environment,
                                          sha=factories.sha(f"race2-{round_number}"), ref="main")
        checklist = factories.full_checklist(request)
        results, errors = _run_at_once([
            lambda: services.approve_request(actor=yes, request=request, checklist=checklist),
            lambda: services.reject_request(actor=no, request=request, comment="not now"),
        ])
        request.refresh_from_db()
        assert len(results) == 1, (results, errors)
        # the loser is told the request was decided (approved) or is final (rejected)
        assert errors in (["already_decided"], ["request_terminal"]), errors
        assert request.status in (RequestStatus.APPROVED, RequestStatus.REJECTED)
        assert request.approvals.count() == 1
        final_events = request.events.filter(kind__in=[EventKind.APPROVED, EventKind.REJECTED]).count()
        assert final_events == 1
        outcomes.add(request.status)
    assert DeploymentRequest.objects.filter(environment=environment).count() == 30


def test_the_same_ci_run_reported_at_once_is_one_execution(postgres):
    """A webhook and reconciliation (or two deliveries of one webhook) record the same run at once."""
    from deployments.choices import ExecutionStatus
    from deployments.models import Execution

    environment = factories.make_environment(name="race-runs")
    bot = factories.UserFactory(username="ci-bot", is_service_account=True)
    for round_number in range(20):
        run = f"github-deployment-{round_number}"
        sha = factories.sha(f"run-{round_number}")
        results, errors = _run_at_once([
            (lambda s=status: services.report_execution(actor=bot, environment=environment, sha=sha, status=s,
                                                        external_id=run))
            for status in (ExecutionStatus.IN_PROGRESS, ExecutionStatus.SUCCESS, ExecutionStatus.SUCCESS)
        ])
        assert not errors, (round_number, errors)
        assert Execution.objects.filter(environment=environment, external_id=run).count() == 1, round_number
        assert len({execution.pk for execution in results}) == 1
