"""The GitHub integration passes the ticket named by the pull request's branch (or the ref), and the
first commit's time for the lead-time metric."""

from __future__ import annotations

import pytest

from deployments.gate import services
from deployments.integrations.github.models import DeliveryState
from deployments.models import DeploymentRequest, Refusal
from tests.integrations.github.conftest import (
    BASE_SHA,
    REPOSITORY,
    SHA,
    compare_answer,
    prepare_github,
    protection_payload,
)
from tests.integrations.github.test_intake import deliver

pytestmark = pytest.mark.django_db


@pytest.fixture
def ticket_required(production):
    services.update_policy(actor=None, approval_policy=production.policy, require_ticket=True)
    return production


def _commits():
    commit = compare_answer()["commits"][0]
    later = {**commit, "sha": "f" * 40}
    commit = {**commit, "commit": {**commit["commit"], "author": {**commit["commit"]["author"],
                                                                   "date": "2026-11-20T08:00:00+01:00"}}}
    later["commit"] = {**later["commit"], "author": {**later["commit"]["author"], "date": "2026-11-25T10:00:00Z"}}
    return [later, commit]


def test_the_ticket_comes_from_the_pull_requests_branch(
    client, github, ticket_required, octocat, django_capture_on_commit_callbacks
):
    from tests.integrations.github.conftest import deployed_base

    prepare_github(github)
    github.compares[(REPOSITORY, BASE_SHA, SHA)] = compare_answer(_commits())
    deployed_base()
    payload = protection_payload(github, pull_requests=[{"number": 7, "head": {"ref": "feature/PAY-77-refunds"}}])
    delivery = deliver(client, django_capture_on_commit_callbacks, "deployment_protection_rule", payload)
    assert delivery.state == DeliveryState.PROCESSED, delivery.state_reason
    request = DeploymentRequest.objects.get()
    assert request.ticket == "PAY-77"
    assert request.change_set["first_commit_at"] == "2026-11-20T07:00:00Z"
    assert request.first_commit_at.isoformat() == "2026-11-20T07:00:00+00:00"


def test_without_a_ticket_github_is_refused_with_the_rule_named(
    client, github, ticket_required, octocat, django_capture_on_commit_callbacks
):
    prepare_github(github)
    delivery = deliver(client, django_capture_on_commit_callbacks, "deployment_protection_rule",
                       protection_payload(github))
    assert delivery.state == DeliveryState.REFUSED and "ticket_required" in delivery.state_reason
    assert not DeploymentRequest.objects.exists()
    assert Refusal.objects.filter(code="ticket_required").exists()
