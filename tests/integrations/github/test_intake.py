"""deployment_protection_rule and deployment_status: from a signed webhook to a request and executions."""

from __future__ import annotations

import pytest
from django.core import mail

from compliance.models import Violation
from compliance.people.suspensions import suspend_user
from deployments.choices import ExecutionStatus, RequestSource, RequestStatus
from deployments.gate import services
from deployments.integrations.github import events
from deployments.integrations.github.models import DeliveryState, GitHubWebhookDelivery
from deployments.models import DecisionDelivery, DeploymentRequest, Execution
from tests import factories
from tests.integrations.github.conftest import (
    BASE_SHA,
    REPOSITORY,
    RUN_ID,
    SHA,
    all_checks,
    deployed_base,
    prepare_github,
    protection_payload,
    send,
)
from tests.integrations.github.fake import fixture

pytestmark = pytest.mark.django_db


@pytest.fixture
def deployed_before(production):
    """A previous successful deployment of BASE_SHA to production (the change set's base)."""
    return services.report_execution(actor=None, environment=production, sha=BASE_SHA, status="success")


def deliver(client, capture, event, payload, delivery_id=None):
    with capture(execute=True):
        response = send(client, event, payload, delivery_id=delivery_id)
    assert response.status_code == 202
    return GitHubWebhookDelivery.objects.get(delivery_id=response.json()["delivery"])


def test_a_protection_rule_request_becomes_a_request_with_checks_and_change_set(
    client, github, production, octocat, deployed_before, django_capture_on_commit_callbacks
):
    prepare_github(github)
    delivery = deliver(
        client, django_capture_on_commit_callbacks, "deployment_protection_rule", protection_payload(github)
    )
    assert delivery.state == DeliveryState.PROCESSED, delivery.state_reason
    request = DeploymentRequest.objects.get()
    assert delivery.request == request
    assert request.source == RequestSource.GITHUB
    assert (request.sha, request.ref) == (SHA, "main")
    assert request.requester == octocat and request.requester_login == "octocat"
    assert request.external_ids["github_deployment_id"] == 1234567
    assert request.external_ids["github_run_id"] == RUN_ID
    assert request.external_ids["github_installation_id"] == 42
    assert request.source_url == f"https://github.com/{REPOSITORY}/actions/runs/{RUN_ID}"
    # Checks fetched from GitHub: all four required checks passed, so approvers can decide.
    assert request.checks == {
        "unit": "success",
        "integration": "success",
        "lint": "success",
        "security-scan": "success",
    }
    assert request.status == RequestStatus.AWAITING_APPROVAL
    # The change set since the last successful deployment, kept as evidence.
    change_set = request.change_set
    assert change_set["base"] == BASE_SHA and change_set["head"] == SHA
    assert change_set["commits"] == [
        {
            "sha": SHA,
            "author": "bob-gh",
            "message": "Fix rounding of refunds",
            "url": f"https://github.com/{REPOSITORY}/commit/{SHA}",
        }
    ]
    assert (change_set["files_changed"], change_set["additions"], change_set["deletions"]) == (1, 12, 3)
    assert change_set["pull_requests"][0]["number"] == 7 and change_set["fetched_at"]
    # GitHub's web-flow committer is not a person; the commit's own author e-mail counts too
    assert request.change_authors == ["bob-gh", "bob@example.com"]
    # Each installation call carried a token obtained with a verified JWT; one token for all calls.
    assert len(github.calls_to(r"/access_tokens$", "POST")) == 1
    assert github.calls_to(rf"/compare/{BASE_SHA}\.\.\.{SHA}$", "GET")
    assert all(c.status < 400 for c in github.calls)


def test_a_change_author_cannot_approve_the_github_request(
    client, github, production, octocat, deployed_before, django_capture_on_commit_callbacks
):
    prepare_github(github)
    deliver(client, django_capture_on_commit_callbacks, "deployment_protection_rule", protection_payload(github))
    request = DeploymentRequest.objects.get()
    bob = factories.approver(production, username="bob", github_login="bob-gh")
    from compliance.errors import RuleViolation

    with pytest.raises(RuleViolation) as exc:
        factories.approve(request, bob)
    assert exc.value.code == "change_author"


def test_an_unmapped_creator_leaves_the_requester_empty_but_keeps_the_login(
    client, github, production, django_capture_on_commit_callbacks
):
    prepare_github(github)
    deliver(client, django_capture_on_commit_callbacks, "deployment_protection_rule", protection_payload(github))
    request = DeploymentRequest.objects.get()
    assert request.requester is None and request.requester_login == "octocat"
    assert request.change_set["base"] is None  # first deployment: nothing to compare with


def test_an_unconfigured_repository_is_visible_alerts_administrators_and_is_never_approved(
    client, github, administrator, django_capture_on_commit_callbacks
):
    prepare_github(github)
    delivery = deliver(
        client, django_capture_on_commit_callbacks, "deployment_protection_rule", protection_payload(github)
    )
    assert delivery.state == DeliveryState.UNCONFIGURED
    assert "No portal repository" in delivery.state_reason
    assert not DeploymentRequest.objects.exists()
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["ada@example.com"]
    assert "Unconfigured GitHub deployment" in mail.outbox[0].subject
    assert github.runs[(REPOSITORY, RUN_ID)].decisions == []

    # Once an administrator configures it, re-processing creates the request.
    service = factories.ServiceFactory(name="payments-api", repository=REPOSITORY)
    factories.make_environment(service=service, name="production")
    with django_capture_on_commit_callbacks(execute=True):
        assert events.reprocess_delivery(actor=administrator, delivery=delivery)
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.PROCESSED and delivery.request is not None


def test_an_unconfigured_environment_is_reported_too(
    client, github, production, administrator, django_capture_on_commit_callbacks
):
    prepare_github(github)
    payload = protection_payload(github, environment="qa")
    delivery = deliver(client, django_capture_on_commit_callbacks, "deployment_protection_rule", payload)
    assert delivery.state == DeliveryState.UNCONFIGURED and "'qa'" in delivery.state_reason
    assert not DeploymentRequest.objects.exists() and len(mail.outbox) == 1


def test_a_callback_url_on_another_host_is_refused(
    client, github, production, administrator, django_capture_on_commit_callbacks
):
    prepare_github(github)
    payload = protection_payload(
        github,
        deployment_callback_url=f"http://169.254.169.254/repos/{REPOSITORY}/actions/runs/1/deployment_protection_rule",
    )
    delivery = deliver(client, django_capture_on_commit_callbacks, "deployment_protection_rule", payload)
    assert delivery.state == DeliveryState.REFUSED
    assert not DeploymentRequest.objects.exists()
    assert github.calls == []


def test_processing_twice_creates_one_request(client, github, production, octocat, django_capture_on_commit_callbacks):
    prepare_github(github)
    delivery = deliver(
        client, django_capture_on_commit_callbacks, "deployment_protection_rule", protection_payload(github)
    )
    GitHubWebhookDelivery.objects.filter(pk=delivery.pk).update(state=DeliveryState.FAILED)
    events.process_delivery(delivery.pk)
    # The same deployment in a second delivery (GitHub re-requests after a re-run) reuses it too.
    deliver(client, django_capture_on_commit_callbacks, "deployment_protection_rule", protection_payload(github))
    assert DeploymentRequest.objects.count() == 1


def test_failing_checks_block_the_request_and_github_is_told_rejected(
    client, github, production, octocat, django_capture_on_commit_callbacks
):
    checks = all_checks()
    checks[2].update(conclusion="failure")
    prepare_github(github, checks=checks)
    deliver(client, django_capture_on_commit_callbacks, "deployment_protection_rule", protection_payload(github))
    request = DeploymentRequest.objects.get()
    assert request.status == RequestStatus.BLOCKED
    assert request.checks["lint"] == "failure"
    outbox = DecisionDelivery.objects.get(request=request, provider="github")
    assert outbox.decision == "rejected" and outbox.status == "delivered"
    assert github.runs[(REPOSITORY, RUN_ID)].decisions[0]["state"] == "rejected"


def test_checks_still_running_are_pending_and_refreshed_later(
    client, github, production, octocat, django_capture_on_commit_callbacks
):
    prepare_github(github, checks=all_checks(status="in_progress", conclusion=None))
    deliver(client, django_capture_on_commit_callbacks, "deployment_protection_rule", protection_payload(github))
    request = DeploymentRequest.objects.get()
    assert request.status == RequestStatus.PENDING_CHECKS
    assert set(request.checks.values()) == {"pending"}
    github.check_runs[(REPOSITORY, SHA)] = all_checks()
    assert events.refresh_pending_checks() == 1
    request.refresh_from_db()
    assert request.status == RequestStatus.AWAITING_APPROVAL


def test_github_unreachable_leaves_the_delivery_failed_and_retryable(
    client, github, production, octocat, administrator, django_capture_on_commit_callbacks
):
    prepare_github(github)
    github.fail("check-runs", (502, {}))
    delivery = deliver(
        client, django_capture_on_commit_callbacks, "deployment_protection_rule", protection_payload(github)
    )
    assert delivery.state == DeliveryState.FAILED and "HTTP 502" in delivery.state_reason
    request = DeploymentRequest.objects.get()  # the request itself was kept
    with django_capture_on_commit_callbacks(execute=True):
        events.reprocess_delivery(actor=administrator, delivery=delivery)
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.PROCESSED and delivery.attempts == 2
    request.refresh_from_db()
    assert request.status == RequestStatus.AWAITING_APPROVAL and DeploymentRequest.objects.count() == 1


def test_a_suspended_requester_gets_a_refusal_not_a_request(
    client, github, production, octocat, administrator, django_capture_on_commit_callbacks
):
    prepare_github(github)
    suspend_user(actor=administrator, user=octocat, reason="Investigation of an unauthorized deployment")
    delivery = deliver(
        client, django_capture_on_commit_callbacks, "deployment_protection_rule", protection_payload(github)
    )
    assert delivery.state == DeliveryState.REFUSED and "suspended" in delivery.state_reason
    assert not DeploymentRequest.objects.exists()
    # The waiting run is told at once, so the pipeline stops instead of waiting for days.
    [decision] = github.runs[(REPOSITORY, RUN_ID)].decisions
    assert decision["state"] == "rejected" and "suspended" in decision["comment"]
    assert "GitHub was told" in delivery.state_reason
    from deployments.models import Refusal

    refusal = Refusal.objects.get()  # kept as evidence, once
    assert refusal.code == "suspended" and refusal.actor.username == "github-app"
    assert refusal.environment == production


def test_a_ref_the_policy_does_not_allow_is_refused_and_rejected_on_github(
    client, github, production, octocat, django_capture_on_commit_callbacks
):
    prepare_github(github)
    payload = protection_payload(github)
    payload["deployment"]["ref"] = "feature/shortcut"
    delivery = deliver(client, django_capture_on_commit_callbacks, "deployment_protection_rule", payload)
    assert delivery.state == DeliveryState.REFUSED and "ref_not_allowed" in delivery.state_reason
    assert github.runs[(REPOSITORY, RUN_ID)].decisions[0]["state"] == "rejected"


def test_an_unknown_base_commit_still_gives_a_change_set(
    client, github, production, octocat, deployed_before, django_capture_on_commit_callbacks
):
    prepare_github(github, compare=False)  # GitHub answers 404 for the comparison
    deliver(client, django_capture_on_commit_callbacks, "deployment_protection_rule", protection_payload(github))
    request = DeploymentRequest.objects.get()
    assert request.change_set["commits"] == [] and "cannot compare" in request.change_set["error"]
    assert request.status == RequestStatus.AWAITING_APPROVAL
    # ... but nobody knows who wrote the change: production refuses approval and says why.
    assert "authors could not be determined" in request.status_reason
    carol = factories.approver(production, username="carol", github_login="carol-gh")
    from compliance.errors import RuleViolation

    with pytest.raises(RuleViolation) as exc:
        factories.approve(request, carol)
    assert exc.value.code == "identity_unverified"


def test_an_unmapped_creator_cannot_slip_through_separation_of_duties(
    client, github, production, deployed_before, approvers, django_capture_on_commit_callbacks
):
    """deployment.creator has no portal person: production approval is refused, the verdict says why."""
    prepare_github(github)
    deliver(client, django_capture_on_commit_callbacks, "deployment_protection_rule", protection_payload(github))
    request = DeploymentRequest.objects.get()
    assert request.requester is None and "'octocat' named by CI matches no portal person" in request.status_reason
    from compliance.errors import RuleViolation

    with pytest.raises(RuleViolation) as exc:
        factories.approve(request, approvers[0])
    assert exc.value.code == "identity_unverified"


def test_a_creator_whose_portal_username_is_their_github_login_is_the_requester(
    client, github, production, deployed_before, django_capture_on_commit_callbacks
):
    octo = factories.approver(production, username="OctoCat")  # no github_login recorded
    prepare_github(github)
    deliver(client, django_capture_on_commit_callbacks, "deployment_protection_rule", protection_payload(github))
    request = DeploymentRequest.objects.get()
    assert request.requester == octo
    from compliance.errors import RuleViolation

    with pytest.raises(RuleViolation) as exc:
        factories.approve(request, octo)
    assert exc.value.code == "self_approval"


def test_pull_request_authors_and_commit_e_mails_are_change_authors(
    client, github, production, octocat, deployed_before, django_capture_on_commit_callbacks
):
    prepare_github(github)
    github.pulls[(REPOSITORY, SHA)][0]["user"] = {"login": "pat-gh"}
    deliver(client, django_capture_on_commit_callbacks, "deployment_protection_rule", protection_payload(github))
    request = DeploymentRequest.objects.get()
    assert {"pat-gh", "bob@example.com"} <= set(request.change_authors)
    from compliance.errors import RuleViolation

    for person in (
        factories.approver(production, username="pat", github_login="pat-gh"),
        factories.approver(production, username="robert", email="BOB@example.com"),
    ):
        with pytest.raises(RuleViolation) as exc:
            factories.approve(request, person)
        assert exc.value.code == "change_author"


def test_the_github_account_cannot_request_through_the_ordinary_path(production):
    from compliance.errors import RuleViolation

    with pytest.raises(RuleViolation) as exc:
        services.submit_request(actor=events.github_account(), environment=production, sha=SHA, ref="main")
    assert exc.value.code == "not_permitted"


def test_a_person_cannot_claim_integration_authority(production, octocat):
    from compliance.errors import RuleViolation

    outsider = factories.UserFactory(username="eve")
    with pytest.raises(RuleViolation) as exc:
        services.submit_request(
            actor=outsider, environment=production, sha=SHA, ref="main", authorized_by_integration=True
        )
    assert exc.value.code == "not_permitted"


# --- deployment_status ------------------------------------------------------------------------


def approved_request(client, github, capture, approvers):
    deployed_base()
    prepare_github(github)
    deliver(client, capture, "deployment_protection_rule", protection_payload(github))
    request = DeploymentRequest.objects.get()
    for person in approvers[:2]:
        factories.approve(request, person)
    request.refresh_from_db()
    assert request.status == RequestStatus.APPROVED
    return request


def status_payload(github, state, **deployment):
    payload = fixture("deployment_status.created", api_url=github.url)
    payload["deployment_status"]["state"] = state
    payload["deployment"].update(deployment)
    return payload


def test_deployment_statuses_record_the_execution_and_finish_the_request(
    client, github, production, octocat, approvers, django_capture_on_commit_callbacks
):
    request = approved_request(client, github, django_capture_on_commit_callbacks, approvers)
    for state in ("queued", "in_progress", "success"):
        delivery = deliver(
            client, django_capture_on_commit_callbacks, "deployment_status", status_payload(github, state)
        )
        assert delivery.state == DeliveryState.PROCESSED, delivery.state_reason
    execution = Execution.objects.exclude(sha=BASE_SHA).get()
    assert execution.status == ExecutionStatus.SUCCESS and execution.authorized
    assert execution.request == request and execution.external_id == "github-deployment-1234567"
    assert execution.url.startswith("https://github.com/")
    request.refresh_from_db()
    assert request.status == RequestStatus.DEPLOYED


def test_an_execution_of_another_sha_is_flagged(
    client, github, production, octocat, approvers, django_capture_on_commit_callbacks
):
    approved_request(client, github, django_capture_on_commit_callbacks, approvers)
    other = factories.sha("other")
    deliver(
        client,
        django_capture_on_commit_callbacks,
        "deployment_status",
        status_payload(github, "in_progress", sha=other),
    )
    execution = Execution.objects.exclude(sha=BASE_SHA).get()
    assert not execution.authorized and "differs from the approved sha" in execution.flag_reason


def test_an_execution_without_any_request_is_flagged(client, github, production, django_capture_on_commit_callbacks):
    deliver(client, django_capture_on_commit_callbacks, "deployment_status", status_payload(github, "success", id=999))
    execution = Execution.objects.exclude(sha=BASE_SHA).get()
    assert not execution.authorized and execution.flag_reason


@pytest.mark.parametrize(
    ("state", "expected"),
    [("pending", DeliveryState.PROCESSED), ("inactive", DeliveryState.IGNORED), ("exploded", DeliveryState.FAILED)],
)
def test_other_deployment_states_map_sensibly(
    client, github, production, state, expected, django_capture_on_commit_callbacks
):
    delivery = deliver(client, django_capture_on_commit_callbacks, "deployment_status", status_payload(github, state))
    assert delivery.state == expected


def test_a_deployment_waiting_for_the_portals_approval_is_not_an_execution(
    client, github, production, octocat, django_capture_on_commit_callbacks
):
    prepare_github(github)
    deliver(client, django_capture_on_commit_callbacks, "deployment_protection_rule", protection_payload(github))
    payload = status_payload(github, "waiting")
    delivery = deliver(client, django_capture_on_commit_callbacks, "deployment_status", payload)
    assert delivery.state == DeliveryState.IGNORED and "waiting for its protection rules" in delivery.state_reason
    assert not Execution.objects.exists()
    assert not Violation.objects.exists()  # no false alarm for a deployment still awaiting approval
    assert DeploymentRequest.objects.get().status == RequestStatus.AWAITING_APPROVAL


def test_a_status_for_an_unconfigured_environment_is_kept_as_unconfigured(
    client, github, django_capture_on_commit_callbacks
):
    delivery = deliver(
        client, django_capture_on_commit_callbacks, "deployment_status", status_payload(github, "success")
    )
    assert delivery.state == DeliveryState.UNCONFIGURED and not Execution.objects.exists()


def test_a_delivery_never_processed_is_picked_up_by_the_sweeper(github, production, octocat):
    import hashlib
    import json
    from datetime import timedelta

    from django.utils import timezone

    from deployments.integrations.github.tasks import requeue_stale_deliveries

    prepare_github(github)
    body = json.dumps(protection_payload(github))
    delivery = GitHubWebhookDelivery.objects.create(  # stored while the broker was down
        delivery_id="lost-1",
        event="deployment_protection_rule",
        action="requested",
        body=body,
        body_sha256=hashlib.sha256(body.encode()).hexdigest(),
    )
    assert requeue_stale_deliveries.delay().get() == 0  # too recent: its own task may still come
    GitHubWebhookDelivery.objects.filter(pk=delivery.pk).update(updated_at=timezone.now() - timedelta(minutes=11))
    assert requeue_stale_deliveries.delay().get() == 1
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.PROCESSED and DeploymentRequest.objects.count() == 1


def test_a_failing_token_endpoint_at_intake_keeps_the_delivery_failed_for_retry(
    client, github, production, octocat, administrator, django_capture_on_commit_callbacks
):
    prepare_github(github)
    github.fail("token", (500, {}), (500, {}))  # (pull requests are optional; check runs are not)
    delivery = deliver(
        client, django_capture_on_commit_callbacks, "deployment_protection_rule", protection_payload(github)
    )
    assert delivery.state == DeliveryState.FAILED and "installation token" in delivery.state_reason
    with django_capture_on_commit_callbacks(execute=True):
        events.reprocess_delivery(actor=administrator, delivery=delivery)
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.PROCESSED
    assert DeploymentRequest.objects.get().status == RequestStatus.AWAITING_APPROVAL
