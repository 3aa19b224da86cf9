"""The Jenkinsfile's approval stage as documented: ``portal-gate`` against a live portal names the
build and its input; a retry of the stage gets the same request, a replay is refused."""

from __future__ import annotations

import re

import pytest

import portal_gate
from deployments.api import tokens
from deployments.integrations.jenkins.models import JenkinsBuild
from deployments.models import DeploymentRequest
from tests import factories
from tests.api.test_portal_gate import live_server_url  # noqa: F401  (the serial live server fixture)
from tests.integrations.jenkins.conftest import JOB, SHA

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def token(production):
    account = factories.UserFactory(username="jenkins-ci", is_service_account=True)
    factories.grant(account, "request", production)
    _, clear = tokens.create_api_token(
        actor=account, user=account, name="jenkins", actions=["read", "request", "execute"]
    )
    return clear


def gate(url, token, build_url, key):
    return portal_gate.main(
        [
            "request",
            "--url",
            url,
            "--token",
            token,
            "--service",
            "payments-api",
            "--environment",
            "production",
            "--sha",
            SHA,
            "--ref",
            "main",
            "--requester",
            "erin",
            "--source-url",
            build_url,
            "--check",
            "unit=success",
            "--external-id",
            f"jenkins_build_url={build_url}",
            "--external-id",
            "jenkins_input_id=Portal",
            "--idempotency-key",
            key,
        ]
    )


def test_the_approval_stage_links_its_build_once(jenkins, production, token, live_server_url, capsys):  # noqa: F811
    build_url = jenkins.build_url(JOB, 12)
    assert gate(live_server_url, token, build_url, "jenkins-payments-deploy-12") == 0
    out = capsys.readouterr().out
    request_id = int(re.search(r"Deployment request #(\d+)", out).group(1))
    assert JenkinsBuild.objects.get().request_id == request_id

    assert gate(live_server_url, token, build_url, "jenkins-payments-deploy-12") == 0  # the stage retried
    assert f"Deployment request #{request_id}" in capsys.readouterr().out

    assert gate(live_server_url, token, build_url, "another-key") == 2  # a replay of the build's input
    out = capsys.readouterr().out
    assert "jenkins_build_refused" in out and "already asked for its input Portal" in out
    assert DeploymentRequest.objects.count() == 1 and JenkinsBuild.objects.count() == 1
