"""Decisions reach the build's input through the outbox: proceed or abort, once in effect, whatever
Jenkins answers meanwhile (faults, expired crumbs, an input already answered)."""

from __future__ import annotations

import pytest
from django.core import mail

from deployments.choices import DeliveryStatus, RequestStatus
from deployments.delivery import outbox
from deployments.gate import services
from deployments.integrations.jenkins.models import InputAnswer, JenkinsBuild
from deployments.models import DecisionDelivery, DeliveryAttempt
from tests import factories
from tests.integrations.jenkins.conftest import (
    JOB,
    SHA,
    approve_all,
    deployed_base,
    gate_body,
    request_gate,
    the_request,
)

pytestmark = pytest.mark.django_db
INPUT = "/jenkins/job/payments/job/deploy/12/input/Portal/"


@pytest.fixture
def waiting(jenkins, production, pipeline, engineer, django_capture_on_commit_callbacks):
    """A build paused on its input (no parameters) and its request awaiting approval."""
    deployed_base(production)
    build = jenkins.start_build(JOB, 12, SHA)
    with django_capture_on_commit_callbacks(execute=True):
        assert request_gate(pipeline, gate_body(jenkins.build_url(JOB, 12))).status_code == 201
    return build, the_request()


def run_until_settled(row, limit=20):
    for _ in range(limit):
        row.refresh_from_db()
        if row.status != DeliveryStatus.PENDING:
            return row
        outbox.attempt_delivery(delivery_id=row.pk, now=row.next_attempt_at)
    row.refresh_from_db()
    return row


def delivery_for(request) -> DecisionDelivery:
    return DecisionDelivery.objects.get(request=request, provider="jenkins")


def test_an_approval_proceeds_an_input_without_parameters_with_proceed_empty(
    waiting, jenkins, approvers, django_capture_on_commit_callbacks
):
    build, request = waiting
    approve_all(request, approvers, django_capture_on_commit_callbacks)
    assert delivery_for(request).status == DeliveryStatus.DELIVERED
    [post] = jenkins.posts()
    assert post.path == INPUT + "proceedEmpty" and post.form == {} and post.user == "deployment-portal"
    assert post.crumb, "the crumb from /crumbIssuer/api/json is sent"
    assert build.approvers == ["deployment-portal"]


def test_a_rejection_aborts_the_input(waiting, jenkins, approvers, django_capture_on_commit_callbacks):
    build, request = waiting
    with django_capture_on_commit_callbacks(execute=True):
        services.reject_request(
            actor=approvers[0],
            request=request,
            comment="Not during the sale.",
            checklist=factories.full_checklist(request),
        )
    assert delivery_for(request).status == DeliveryStatus.DELIVERED
    assert [c.path for c in jenkins.posts()] == [INPUT + "abort"]
    assert build.result == "ABORTED" and JenkinsBuild.objects.get().answer == InputAnswer.ABORTED


def test_a_newer_build_supersedes_the_older_one_whose_input_is_aborted(
    waiting, jenkins, pipeline, django_capture_on_commit_callbacks
):
    old_build, old = waiting
    jenkins.start_build(JOB, 13, SHA)
    with django_capture_on_commit_callbacks(execute=True):
        assert request_gate(pipeline, gate_body(jenkins.build_url(JOB, 13))).status_code == 201
    old.refresh_from_db()
    assert old.status == RequestStatus.SUPERSEDED
    assert [c.path for c in jenkins.posts()] == [INPUT + "abort"] and old_build.result == "ABORTED"


def test_an_input_already_proceeded_by_the_portal_counts_as_delivered(
    waiting, jenkins, approvers, django_capture_on_commit_callbacks
):
    build, request = waiting
    # The portal's earlier answer got through but its response was lost: Jenkins went on.
    build.inputs.clear()
    build.approvers.append("deployment-portal")
    approve_all(request, approvers, django_capture_on_commit_callbacks)
    row = delivery_for(request)
    assert row.status == DeliveryStatus.DELIVERED and not jenkins.posts()
    assert JenkinsBuild.objects.get().answered_by == "deployment-portal"


def test_an_input_already_aborted_counts_as_delivered_for_a_rejection(
    waiting, jenkins, approvers, django_capture_on_commit_callbacks
):
    build, request = waiting
    build.inputs.clear()
    build.building, build.result = False, "ABORTED"
    with django_capture_on_commit_callbacks(execute=True):
        services.cancel_request(actor=request.requester, request=request, reason="Wrong commit.")
    assert delivery_for(request).status == DeliveryStatus.DELIVERED and not jenkins.posts()


def test_an_input_proceeded_by_someone_else_after_a_rejection_fails_at_once_and_alerts(
    waiting, jenkins, approvers, django_capture_on_commit_callbacks
):
    build, request = waiting
    factories.UserFactory(username="ada-admin", email="ada@example.com", roles=["Administrators"])
    build.inputs.clear()
    build.approvers.append("jenkins-admin")  # a Jenkins administrator answered the input in Jenkins
    with django_capture_on_commit_callbacks(execute=True):
        services.reject_request(
            actor=approvers[0], request=request, comment="No.", checklist=factories.full_checklist(request)
        )
    row = delivery_for(request)
    assert row.status == DeliveryStatus.FAILED and row.attempts == 1
    assert "jenkins-admin proceeded its input" in row.last_error
    assert not jenkins.posts()
    assert any("could not be delivered to jenkins" in m.subject for m in mail.outbox)


def test_an_approval_before_the_build_reaches_its_input_waits_for_it(
    jenkins, production, pipeline, engineer, approvers, django_capture_on_commit_callbacks
):
    deployed_base(production)
    build = jenkins.start_build(JOB, 12, SHA, waiting=False)
    with django_capture_on_commit_callbacks(execute=True):
        assert request_gate(pipeline, gate_body(jenkins.build_url(JOB, 12))).status_code == 201
    request = approve_all(the_request(), approvers, django_capture_on_commit_callbacks)
    row = delivery_for(request)
    assert row.status == DeliveryStatus.PENDING and "not waiting on input Portal yet" in row.last_error
    jenkins.wait(build, "Portal")
    assert run_until_settled(row).status == DeliveryStatus.DELIVERED
    assert [c.path for c in jenkins.posts()] == [INPUT + "proceedEmpty"]


@pytest.mark.parametrize(
    ("fault", "key"),
    [
        ((503, {"Retry-After": "120"}), "pending"),
        ((429, {"Retry-After": "60"}), "post"),
        ((502, {}), "post"),
        ("timeout", "pending"),
        ("timeout", "crumb"),
    ],
)
def test_faults_are_retried_and_the_input_is_answered_once(
    waiting, jenkins, approvers, django_capture_on_commit_callbacks, fault, key
):
    build, request = waiting
    jenkins.fail(key, fault)
    approve_all(request, approvers, django_capture_on_commit_callbacks)
    row = delivery_for(request)
    assert row.status == DeliveryStatus.PENDING and row.attempts == 1
    first = DeliveryAttempt.objects.get(delivery=row)
    assert first.outcome == "retry"
    if fault == "timeout":
        assert "timeout" in first.error or "deadline" in first.error
    else:
        assert first.status_code == fault[0]
        if "Retry-After" in fault[1]:
            wait = (row.next_attempt_at - first.finished_at).total_seconds()
            assert wait >= float(fault[1]["Retry-After"]) - 1
    assert "token" not in first.error.lower() and jenkins.token not in first.error
    assert run_until_settled(row).status == DeliveryStatus.DELIVERED
    assert len(jenkins.posts("/proceedEmpty")) == (2 if key == "post" else 1)
    assert build.approvers == ["deployment-portal"]


def test_an_expired_crumb_is_renewed_once_within_the_attempt(
    waiting, jenkins, approvers, django_capture_on_commit_callbacks
):
    build, request = waiting
    real_crumb = jenkins._crumb

    def crumb_then_expire(http_request):
        response = real_crumb(http_request)
        if len([c for c in jenkins.calls if c.path.endswith("/crumbIssuer/api/json")]) == 1:
            jenkins.expire_crumbs()  # the crumb handed out is no longer valid when it is used
        return response

    jenkins._crumb = crumb_then_expire
    approve_all(request, approvers, django_capture_on_commit_callbacks)
    row = delivery_for(request)
    assert row.status == DeliveryStatus.DELIVERED and row.attempts == 1
    statuses = [c.status for c in jenkins.posts()]
    assert statuses == [403, 200]
    assert len([c for c in jenkins.calls if c.path.endswith("/crumbIssuer/api/json")]) == 2


def test_without_a_crumb_issuer_no_crumb_is_sent(waiting, jenkins, approvers, django_capture_on_commit_callbacks):
    build, request = waiting
    jenkins.crumb_issuer, jenkins.crumbs = False, False
    approve_all(request, approvers, django_capture_on_commit_callbacks)
    assert delivery_for(request).status == DeliveryStatus.DELIVERED
    [post] = jenkins.posts()
    assert post.crumb == "" and post.status == 200


def test_a_wrong_api_token_fails_at_once_naming_the_setting_not_the_token(
    waiting, jenkins, approvers, settings, django_capture_on_commit_callbacks
):
    build, request = waiting
    settings.JENKINS_API_TOKEN = "revoked-token-0000"
    approve_all(request, approvers, django_capture_on_commit_callbacks)
    row = delivery_for(request)
    assert row.status == DeliveryStatus.FAILED and row.last_status_code == 401
    assert "revoked-token-0000" not in row.last_error and build.inputs


def test_an_input_the_portal_may_not_submit_fails_at_once_with_the_reason(
    jenkins, production, pipeline, engineer, approvers, django_capture_on_commit_callbacks
):
    deployed_base(production)
    build = jenkins.start_build(JOB, 12, SHA, submitter="release-managers")
    with django_capture_on_commit_callbacks(execute=True):
        request_gate(pipeline, gate_body(jenkins.build_url(JOB, 12)))
    request = approve_all(the_request(), approvers, django_capture_on_commit_callbacks)
    row = delivery_for(request)
    assert row.status == DeliveryStatus.FAILED and row.last_status_code == 403
    assert "must be the input's submitter" in row.last_error and build.inputs


def test_the_outbound_policy_applies_to_jenkins(
    waiting, jenkins, approvers, settings, django_capture_on_commit_callbacks
):
    build, request = waiting
    settings.PORTAL_OUTBOUND_ALLOWED_HOSTS = []
    before = len(jenkins.calls)
    approve_all(request, approvers, django_capture_on_commit_callbacks)
    row = delivery_for(request)
    assert row.status == DeliveryStatus.FAILED and "outbound policy" in row.last_error
    assert len(jenkins.calls) == before, "nothing reached Jenkins"


def test_a_build_no_longer_on_the_configured_jenkins_is_never_called(
    waiting, jenkins, approvers, settings, django_capture_on_commit_callbacks
):
    build, request = waiting
    settings.JENKINS_URL = jenkins.root + "/ci"
    before = len(jenkins.calls)
    approve_all(request, approvers, django_capture_on_commit_callbacks)
    row = delivery_for(request)
    assert row.status == DeliveryStatus.FAILED and "not on the configured Jenkins" in row.last_error
    assert len(jenkins.calls) == before


def test_a_build_of_another_commit_is_never_proceeded(waiting, jenkins, approvers, django_capture_on_commit_callbacks):
    build, request = waiting
    build.sha = "0badc0de00000000000000000000000000000000"  # the build checked out something else
    approve_all(request, approvers, django_capture_on_commit_callbacks)
    row = delivery_for(request)
    assert row.status == DeliveryStatus.FAILED and "not the approved commit" in row.last_error
    assert not jenkins.posts() and build.inputs and not build.approvers


def test_a_shared_library_checkout_does_not_hide_the_approved_commit(
    waiting, jenkins, approvers, django_capture_on_commit_callbacks
):
    build, request = waiting
    build.library_sha = "1ib0000000000000000000000000000000000000".replace("i", "1")
    approve_all(request, approvers, django_capture_on_commit_callbacks)
    assert delivery_for(request).status == DeliveryStatus.DELIVERED
    assert build.approvers == ["deployment-portal"]


def test_a_redirect_instead_of_an_answer_is_not_counted_as_delivered(
    waiting, jenkins, approvers, django_capture_on_commit_callbacks
):
    build, request = waiting
    jenkins.fail("post", (301, {"Location": "https://localhost/jenkins/job/payments/job/deploy/12/"}))
    approve_all(request, approvers, django_capture_on_commit_callbacks)
    row = delivery_for(request)
    assert row.status == DeliveryStatus.FAILED and "redirected" in row.last_error and "JENKINS_URL" in row.last_error
    assert build.inputs, "the input still waits"
