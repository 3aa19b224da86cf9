"""Fixtures for the Jenkins integration: the fake Jenkins, a Jenkins service with its production
environment and job, the pipeline's API token, and what the Jenkinsfile's stages do."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from deployments.api import tokens
from deployments.choices import CIProvider, RequestStatus, Tier
from deployments.integrations.jenkins.models import JenkinsJob
from deployments.models import DeploymentRequest, Execution
from tests import factories
from tests.integrations.jenkins.fake import FakeJenkins

SHA = "9fceb02d0ae598e95dc970b74767f19372d61af8"
BASE_SHA = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
JOB = ("payments", "deploy")
CHECKS = {"unit": "success", "integration": "success", "lint": "success", "security-scan": "success"}


@pytest.fixture
def jenkins(settings, httpserver):
    fake = FakeJenkins(httpserver)
    settings.JENKINS_URL = fake.url
    settings.JENKINS_USER = fake.user
    settings.JENKINS_API_TOKEN = fake.token
    settings.PORTAL_OUTBOUND_ALLOWED_HOSTS = ["localhost"]
    settings.PORTAL_HTTP_TIMEOUT = 1.0
    settings.PORTAL_BASE_URL = "https://portal.example.com"
    fake.sleep_seconds = 2.5
    return fake


@pytest.fixture
def production(db):
    """payments-api/production on Jenkins: strict defaults (2 approvals, change authors excluded, four checks)."""
    service = factories.ServiceFactory(
        name="payments-api", repository="acme/payments-api", ci_provider=CIProvider.JENKINS
    )
    environment = factories.make_environment(service=service, name="production", tier=Tier.PRODUCTION)
    JenkinsJob.objects.create(environment=environment, job_path="payments/deploy", deploy_stage="Deploy")
    return environment


@pytest.fixture
def pipeline(production):
    """The Jenkins credential the Jenkinsfile uses: a service account's token that may request here."""
    account = factories.UserFactory(username="jenkins-ci", is_service_account=True)
    factories.grant(account, "request", production)
    _, clear = tokens.create_api_token(actor=account, user=account, name="jenkins")
    return Client(HTTP_AUTHORIZATION=f"Bearer {clear}")


@pytest.fixture
def engineer(production):
    return factories.engineer(production, username="erin")


@pytest.fixture
def approvers(production):
    return [factories.approver(production, username=f"prod-approver{i}") for i in range(3)]


def deployed_base(environment):
    """A previous authorized deployment: history from before the test, written directly."""
    Execution.objects.create(
        environment=environment,
        sha=BASE_SHA,
        status="success",
        authorized=True,
        started_at=timezone.now() - timedelta(days=1),
    )


def gate_body(build_url: str, *, input_id: str = "Portal", **changes) -> dict:
    """What the Jenkinsfile's gate stage sends (portal-gate or curl): the build and its input."""
    body = {
        "service": "payments-api",
        "environment": "production",
        "sha": SHA,
        "ref": "main",
        "source": "cli",
        "requester_login": "erin",
        "change_authors": ["bob@example.com"],
        "checks": dict(CHECKS),
        "title": "payments-api #12",
        "source_url": build_url,
        "external_ids": {"jenkins_build_url": build_url, "jenkins_input_id": input_id},
    }
    body.update(changes)
    return body


def request_gate(pipeline, body, **headers):
    return pipeline.post("/api/v1/requests/", body, content_type="application/json", **headers)


def approve_all(request, approvers, capture):
    for person in approvers[:2]:
        with capture(execute=True):
            factories.approve(request, person)
    request.refresh_from_db()
    assert request.status == RequestStatus.APPROVED
    return request


def the_request() -> DeploymentRequest:
    return DeploymentRequest.objects.get()
