"""Reconciliation asks Jenkins what its builds deployed, so a lost post-step report, a build answered
in Jenkins behind the portal's back, or a build that never asked still leaves its evidence."""

from __future__ import annotations

import pytest

from compliance.models import Violation, ViolationKind
from deployments import integrations
from deployments.choices import RequestStatus
from deployments.gate import services
from deployments.integrations.jenkins.models import JenkinsBuild
from deployments.integrations.jenkins.reconciliation import JENKINS_USERNAME, reconcile_jenkins_builds
from deployments.models import Execution
from tests import factories
from tests.integrations.jenkins.conftest import (
    BASE_SHA,
    JOB,
    SHA,
    approve_all,
    deployed_base,
    gate_body,
    request_gate,
    the_request,
)

pytestmark = pytest.mark.django_db
OTHER_SHA = "c0ffee0000000000000000000000000000000001"


def builds():
    """The executions of Jenkins builds (not the earlier deployment of BASE_SHA)."""
    return Execution.objects.exclude(sha=BASE_SHA)


@pytest.fixture
def approved(jenkins, production, pipeline, engineer, approvers, django_capture_on_commit_callbacks):
    """A build whose input the portal proceeded after two approvals."""
    deployed_base(production)
    build = jenkins.start_build(JOB, 12, SHA)
    with django_capture_on_commit_callbacks(execute=True):
        assert request_gate(pipeline, gate_body(jenkins.build_url(JOB, 12))).status_code == 201
    request = approve_all(the_request(), approvers, django_capture_on_commit_callbacks)
    assert build.approvers == ["deployment-portal"]
    return build, request


def test_a_deployment_whose_post_step_never_reported_is_recorded_and_moves_the_request(approved, jenkins):
    build, request = approved
    jenkins.deploy(build, "SUCCESS")
    counts = reconcile_jenkins_builds()
    assert counts["recorded"] == 1 and counts["errors"] == 0
    execution = Execution.objects.get(external_id=jenkins.build_url(JOB, 12))
    assert execution.authorized and execution.sha == SHA and execution.reported_by.username == JENKINS_USERNAME
    request.refresh_from_db()
    assert request.status == RequestStatus.DEPLOYED
    assert not Violation.objects.exists()
    again = reconcile_jenkins_builds()
    assert again["recorded"] == 0 and again["known"] == 1 and builds().count() == 1
    assert JenkinsBuild.objects.get().settled
    third = reconcile_jenkins_builds()
    assert third["builds"] == 0 and third["known"] == 1, "a settled build is not read again"


def test_a_deployment_still_running_is_recorded_then_caught_up_when_it_fails(approved, jenkins):
    build, request = approved
    jenkins.deploy(build, finish=False)
    assert reconcile_jenkins_builds()["recorded"] == 1
    assert builds().get().status == "in_progress"
    jenkins.deploy(build, "FAILED")
    assert reconcile_jenkins_builds()["updated"] == 1
    request.refresh_from_db()
    assert builds().get().status == "failure" and request.status == RequestStatus.FAILED


def test_a_rejected_build_proceeded_in_jenkins_is_an_unauthorized_deployment(
    jenkins, production, pipeline, engineer, approvers, django_capture_on_commit_callbacks
):
    deployed_base(production)
    build = jenkins.start_build(JOB, 12, SHA)
    with django_capture_on_commit_callbacks(execute=True):
        request_gate(pipeline, gate_body(jenkins.build_url(JOB, 12)))
    request = the_request()
    jenkins.fail("post", (503, {}))  # the abort does not get through at once
    with django_capture_on_commit_callbacks(execute=True):
        services.reject_request(
            actor=approvers[0], request=request, comment="No.", checklist=factories.full_checklist(request)
        )
    # Meanwhile a Jenkins administrator proceeds the input in Jenkins, and the build deploys.
    build.inputs.clear()
    build.approvers.append("jenkins-admin")
    jenkins.deploy(build, "SUCCESS")
    counts = reconcile_jenkins_builds()
    assert counts["recorded"] == 1 and counts["violations"] >= 1
    execution = builds().get()
    assert not execution.authorized and "rejected" in execution.flag_reason
    violation = Violation.objects.get(kind=ViolationKind.UNAUTHORIZED_DEPLOYMENT)
    assert violation.source == "reconciliation"
    assert violation.evidence["missed_event"]["proceeded_by"] == "jenkins-admin"


def test_a_build_of_a_listed_job_that_never_asked_is_found_and_flagged(jenkins, production):
    build = jenkins.start_build(JOB, 30, OTHER_SHA, waiting=False)
    jenkins.deploy(build, "SUCCESS")
    jenkins.start_build(JOB, 31, OTHER_SHA, waiting=False)  # still building, its deploy stage not reached
    counts = reconcile_jenkins_builds()
    assert counts["recorded"] == 1 and counts["not_started"] == 1
    execution = builds().get()
    assert execution.external_id == jenkins.build_url(JOB, 30) and execution.sha == OTHER_SHA
    assert not execution.authorized and "No deployment request" in execution.flag_reason
    assert Violation.objects.get().kind == ViolationKind.UNAUTHORIZED_DEPLOYMENT


def test_a_build_rejected_at_its_input_records_nothing(
    jenkins, production, pipeline, engineer, approvers, django_capture_on_commit_callbacks
):
    build = jenkins.start_build(JOB, 12, SHA)
    with django_capture_on_commit_callbacks(execute=True):
        request_gate(pipeline, gate_body(jenkins.build_url(JOB, 12)))
    request = the_request()
    with django_capture_on_commit_callbacks(execute=True):
        services.reject_request(
            actor=approvers[0], request=request, comment="No.", checklist=factories.full_checklist(request)
        )
    assert build.result == "ABORTED"
    counts = reconcile_jenkins_builds()
    assert counts["not_started"] == 1 and counts["recorded"] == 0 and not builds().exists()
    assert JenkinsBuild.objects.get().settled


def test_jenkins_faults_are_counted_and_the_other_builds_still_reconciled(approved, jenkins):
    build, request = approved
    jenkins.deploy(build, "SUCCESS")
    other = jenkins.start_build(JOB, 30, OTHER_SHA, waiting=False)
    jenkins.deploy(other, "SUCCESS")
    jenkins.fail("describe", (500, {}))
    counts = reconcile_jenkins_builds()
    assert counts["errors"] == 1 and counts["recorded"] == 1
    assert reconcile_jenkins_builds()["recorded"] == 1
    assert builds().count() == 2


def test_without_jenkins_configured_reconciliation_says_so(settings, db):
    settings.JENKINS_URL = ""
    result = reconcile_jenkins_builds()
    assert result["configured"] is False and "JENKINS_URL" in result["skipped"]


def test_jenkins_is_a_registered_reconciliation_source(approved, jenkins):
    build, _ = approved
    jenkins.deploy(build, "SUCCESS")
    [source] = [s for s in integrations.reconciliation_sources() if s.name == "jenkins"]
    assert source.label == "Jenkins" and source.run()["recorded"] == 1
