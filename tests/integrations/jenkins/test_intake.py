"""Requests from Jenkins builds: the build and its input are accepted only on the configured Jenkins,
for a job listed for the environment, once; anything else is refused with nothing created."""

from __future__ import annotations

import pytest
from django.test import Client

from deployments.choices import RequestStatus
from deployments.integrations.jenkins.client import parse_build_url
from deployments.integrations.jenkins.models import JenkinsBuild, JenkinsJob
from deployments.models import DecisionDelivery, DeploymentRequest, Refusal
from tests.integrations.jenkins.conftest import JOB, SHA, gate_body, request_gate

pytestmark = pytest.mark.django_db


def assert_refused(response, *words):
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "jenkins_build_refused"
    for word in words:
        assert word in error["message"]
    assert not DeploymentRequest.objects.exists() and not JenkinsBuild.objects.exists()
    refusal = Refusal.objects.get(code="jenkins_build_refused")
    assert refusal.environment is not None and refusal.message == error["message"]


def test_a_folder_job_build_is_linked_with_its_input_id_as_jenkins_spells_it(jenkins, production, pipeline):
    url = jenkins.build_url(JOB, 12)
    response = request_gate(pipeline, gate_body(url, input_id="portal-approval"))
    assert response.status_code == 201, response.content
    build = JenkinsBuild.objects.get()
    assert build.request_id == response.json()["id"] and build.job == JenkinsJob.objects.get()
    assert build.build_url == url and build.input_id == "Portal-approval" and build.build_number == 12
    assert response.json()["external_ids"]["jenkins_build_url"] == url


def test_a_multibranch_pattern_matches_encoded_branch_names(jenkins, production, pipeline):
    JenkinsJob.objects.create(environment=production, job_path="payments-mb/*", deploy_stage="Deploy")
    url = f"{jenkins.url}/job/payments-mb/job/release%2F2026.12/7/"
    assert request_gate(pipeline, gate_body(url)).status_code == 201
    build = JenkinsBuild.objects.get()
    assert build.job_path == "payments-mb/release/2026.12" and build.build_url == url


@pytest.mark.parametrize(
    ("make_url", "words"),
    [
        (lambda j: j.build_url(JOB, 12).replace("localhost", "127.0.0.1"), ["not on the configured Jenkins"]),
        (lambda j: j.build_url(JOB, 12).replace("/jenkins/", "/other/"), ["not on the configured Jenkins"]),
        (lambda j: j.build_url(JOB, 12).replace("http://", "http://admin:pw@"), ["not on the configured Jenkins"]),
        (lambda j: j.build_url(JOB, 12) + "?delay=0", ["not on the configured Jenkins"]),
        (lambda j: j.build_url(JOB, 12).replace("http://", "https://"), ["not on the configured Jenkins"]),
        (lambda j: f"{j.url}/job/payments/job/deploy/", ["not a build URL"]),
        (lambda j: f"{j.url}/view/all/job/payments/job/deploy/12/", ["not a build URL"]),
        (lambda j: f"{j.url}/job/payments/job/deploy/0/", ["not positive"]),
        (lambda j: f"{j.url}/job/payments/job/%2E%2E/12/", ["not valid"]),
        (
            lambda j: j.build_url(("billing", "deploy"), 3),
            ["'billing/deploy' may not deploy to payments-api/production"],
        ),
    ],
)
def test_a_build_elsewhere_or_of_another_job_is_refused_with_nothing_created(
    jenkins, production, pipeline, make_url, words
):
    assert_refused(request_gate(pipeline, gate_body(make_url(jenkins))), *words)


@pytest.mark.parametrize("input_id", ["../abort", "a b", "-x", "x" * 101])
def test_an_input_id_jenkins_would_not_accept_is_refused(jenkins, production, pipeline, input_id):
    assert_refused(
        request_gate(pipeline, gate_body(jenkins.build_url(JOB, 12), input_id=input_id)), "jenkins_input_id is refused"
    )


def test_a_build_url_without_its_input_id_is_refused(jenkins, production, pipeline):
    body = gate_body(jenkins.build_url(JOB, 12))
    del body["external_ids"]["jenkins_input_id"]
    assert_refused(request_gate(pipeline, body), "needs both jenkins_build_url and jenkins_input_id")


def test_a_replayed_submission_of_the_same_build_input_is_refused_and_the_first_request_stands(
    jenkins, production, pipeline
):
    url = jenkins.build_url(JOB, 12)
    first = request_gate(pipeline, gate_body(url))
    assert first.status_code == 201
    again = request_gate(pipeline, gate_body(url, input_id="Portal"))
    assert again.status_code == 400 and again.json()["error"]["code"] == "jenkins_build_refused"
    assert f"request #{first.json()['id']}" in again.json()["error"]["message"]
    [request] = DeploymentRequest.objects.all()
    assert request.status == RequestStatus.AWAITING_APPROVAL, "the replay superseded nothing"
    assert JenkinsBuild.objects.count() == 1 and Refusal.objects.filter(code="jenkins_build_refused").count() == 1


def test_a_retry_with_the_same_idempotency_key_returns_the_original_request(jenkins, production, pipeline):
    url = jenkins.build_url(JOB, 12)
    first = request_gate(pipeline, gate_body(url), HTTP_IDEMPOTENCY_KEY="jenkins-payments-deploy-12")
    again = request_gate(pipeline, gate_body(url), HTTP_IDEMPOTENCY_KEY="jenkins-payments-deploy-12")
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"] and JenkinsBuild.objects.count() == 1


@pytest.mark.parametrize("authorization", ["", "Bearer not-a-token", "Basic ZGVwbG95bWVudC1wb3J0YWw6MTFhN2MwZmZlZQ=="])
def test_a_forged_pipeline_credential_creates_nothing(jenkins, production, authorization):
    client = Client(HTTP_AUTHORIZATION=authorization) if authorization else Client()
    response = request_gate(client, gate_body(jenkins.build_url(JOB, 12)))
    assert response.status_code in (401, 403)
    assert not DeploymentRequest.objects.exists() and not JenkinsBuild.objects.exists()


def test_without_jenkins_configured_a_jenkins_request_is_refused(jenkins, production, pipeline, settings):
    url = jenkins.build_url(JOB, 12)
    settings.JENKINS_API_TOKEN = ""
    assert_refused(request_gate(pipeline, gate_body(url)), "JENKINS_API_TOKEN must be set")


def test_requests_without_jenkins_ids_are_left_alone(jenkins, production, pipeline):
    body = gate_body(jenkins.build_url(JOB, 12))
    body["external_ids"] = {"run": "42"}
    assert request_gate(pipeline, body).status_code == 201
    assert not JenkinsBuild.objects.exists()


def test_a_request_blocked_by_its_checks_at_once_aborts_the_input(
    jenkins, production, pipeline, django_capture_on_commit_callbacks
):
    build = jenkins.start_build(JOB, 12, SHA)
    body = gate_body(jenkins.build_url(JOB, 12), checks={"unit": "failure"})
    with django_capture_on_commit_callbacks(execute=True):
        assert request_gate(pipeline, body).status_code == 201
    assert DeploymentRequest.objects.get().status == RequestStatus.BLOCKED
    assert DecisionDelivery.objects.get(provider="jenkins").status == "delivered"
    assert [c.path for c in jenkins.posts()] == ["/jenkins/job/payments/job/deploy/12/input/Portal/abort"]
    assert build.result == "ABORTED"


def test_build_urls_are_parsed_into_job_names_and_number(jenkins):
    ref = parse_build_url(f"{jenkins.url}/job/a%20b/job/c/41")
    assert ref.names == ("a b", "c") and ref.number == 41
    assert ref.url == f"{jenkins.url}/job/a%20b/job/c/41/" and ref.job_url == f"{jenkins.url}/job/a%20b/job/c/"
