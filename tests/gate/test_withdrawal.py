"""Supersede, cancel and expiry: what a newer request ends, what an approval withdrawal means for the
requester and for the executions CI reports."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from deployments.choices import ExecutionStatus, RequestStatus
from deployments.gate import services
from deployments.models import DeploymentRequest
from deployments.notifications.models import NotificationKind, NotificationLog
from tests import factories

pytestmark = pytest.mark.django_db


def approved(submit, approvers, **kwargs):
    request = submit(**kwargs)
    factories.approve(request, approvers[0])
    request.refresh_from_db()
    assert request.status == RequestStatus.APPROVED
    return request


def test_a_newer_request_supersedes_only_undecided_requests(submit, approvers):
    alices = approved(submit, approvers)
    waiting = submit()
    newer = submit()
    waiting.refresh_from_db()
    alices.refresh_from_db()
    assert waiting.status == RequestStatus.SUPERSEDED and waiting.superseded_by == newer
    assert alices.status == RequestStatus.APPROVED and alices.superseded_by is None
    assert newer.status == RequestStatus.AWAITING_APPROVAL


def test_with_the_policy_option_a_newer_request_withdraws_an_older_approval(submit, approvers, environment):
    services.update_policy(actor=None, approval_policy=environment.policy, newer_request_withdraws_approvals=True)
    alices = approved(submit, approvers)
    newer = submit()
    assert newer.policy_snapshot["newer_request_withdraws_approvals"] is True
    alices.refresh_from_db()
    assert alices.status == RequestStatus.SUPERSEDED and alices.superseded_by == newer
    assert f"Superseded by request #{newer.pk}" in alices.status_reason
    assert "approval is withdrawn" in alices.status_reason
    assert alices.finished_at is not None


def test_a_deploying_request_is_never_superseded(submit, approvers, environment, requester):
    services.update_policy(actor=None, approval_policy=environment.policy, newer_request_withdraws_approvals=True)
    alices = approved(submit, approvers)
    services.report_execution(
        actor=requester, environment=environment, sha=alices.sha, status=ExecutionStatus.IN_PROGRESS
    )
    submit()
    alices.refresh_from_db()
    assert alices.status == RequestStatus.DEPLOYING


# --- executions are judged by what was authorized when they started -----------------------------


def test_an_execution_started_while_the_approval_stood_stays_authorized_after_a_cancel(
    submit, approvers, environment, requester
):
    alices = approved(submit, approvers)
    started = timezone.now()
    services.cancel_request(actor=requester, request=alices, reason="Wrong commit.")
    execution = services.report_execution(
        actor=requester, environment=environment, sha=alices.sha, status=ExecutionStatus.SUCCESS, started_at=started
    )
    assert execution.authorized, execution.flag_reason
    assert execution.request == alices
    alices.refresh_from_db()
    assert alices.status == RequestStatus.CANCELLED  # terminal states never change


def test_an_execution_started_after_a_withdrawal_is_flagged_with_the_reason(submit, approvers, environment, requester):
    services.update_policy(actor=None, approval_policy=environment.policy, newer_request_withdraws_approvals=True)
    alices = approved(submit, approvers)
    submit()
    execution = services.report_execution(
        actor=requester, environment=environment, sha=alices.sha, status=ExecutionStatus.IN_PROGRESS
    )
    assert not execution.authorized
    assert execution.flag_reason == "The approval was withdrawn (superseded) before the deployment started."


def test_an_execution_of_a_request_that_was_never_approved_is_flagged(submit, environment, requester):
    waiting = submit()
    services.cancel_request(actor=requester, request=waiting)
    execution = services.report_execution(
        actor=requester, environment=environment, sha=waiting.sha, status=ExecutionStatus.IN_PROGRESS, request=waiting
    )
    assert not execution.authorized
    assert "cancelled, not approved" in execution.flag_reason


def test_an_approval_that_lapsed_before_the_start_is_flagged_and_one_started_in_time_is_not(
    submit, approvers, environment, requester
):
    alices = approved(submit, approvers)
    now = timezone.now()
    # Approved three hours ago with a two-hour limit (set on the row: the clock cannot be moved back).
    DeploymentRequest.objects.filter(pk=alices.pk).update(
        decided_at=now - timedelta(hours=3), approval_expires_at=now - timedelta(hours=1)
    )
    in_time = now - timedelta(hours=2)
    services.expire_due_requests(actor=None, now=now)
    alices.refresh_from_db()
    assert alices.status == RequestStatus.EXPIRED
    ok = services.report_execution(
        actor=requester,
        environment=environment,
        sha=alices.sha,
        status=ExecutionStatus.SUCCESS,
        started_at=in_time,
        external_id="run-1",
    )
    late = services.report_execution(
        actor=requester, environment=environment, sha=alices.sha, status=ExecutionStatus.SUCCESS, external_id="run-2"
    )
    assert ok.authorized and not late.authorized


# --- the requester is told ----------------------------------------------------------------------


def test_the_requester_is_told_when_a_newer_request_withdraws_the_approval(
    submit, approvers, environment, requester, django_capture_on_commit_callbacks
):
    requester.email = "rita@example.com"
    requester.save()
    services.update_policy(actor=None, approval_policy=environment.policy, newer_request_withdraws_approvals=True)
    alices = approved(submit, approvers)
    dave = factories.engineer(environment, username="dave")
    with django_capture_on_commit_callbacks(execute=True):
        newer = submit(actor=dave)
    told = [m for m in mail.outbox if m.to == ["rita@example.com"]]
    assert len(told) == 1, [m.subject for m in mail.outbox]
    assert "superseded" in told[0].subject.lower()
    assert f"/requests/{newer.pk}/" in told[0].body
    assert "approval is withdrawn" in told[0].body
    log = NotificationLog.objects.get(request=alices, kind=NotificationKind.ENDED)
    assert log.user == requester
    assert alices.events.filter(kind="notified", message__startswith="Requester told").exists()


def test_the_requester_is_not_told_of_their_own_cancel(submit, requester, django_capture_on_commit_callbacks):
    requester.email = "rita@example.com"
    requester.save()
    request = submit()
    with django_capture_on_commit_callbacks(execute=True):
        services.cancel_request(actor=requester, request=request)
    assert not NotificationLog.objects.filter(request=request, kind=NotificationKind.ENDED).exists()
    assert DeploymentRequest.objects.get(pk=request.pk).status == RequestStatus.CANCELLED
