"""Reconciliation against GitHub: deployments whose deployment_status webhook never reached the portal."""

from __future__ import annotations

import logging
from datetime import timedelta
from urllib.parse import parse_qs

import pytest
from django.urls import reverse
from django.utils import timezone

from compliance.models import Violation, ViolationKind
from compliance.people.roles import Role
from deployments.choices import ExecutionStatus, RequestStatus, Tier
from deployments.detection import reconciliation as reconciliation_runs
from deployments.gate import services
from deployments.integrations.github import reconciliation
from deployments.integrations.github.models import DeliveryState, GitHubWebhookDelivery
from deployments.models import DeploymentRequest, Execution, FreezeWindow, ReconciliationRun
from tests import factories
from tests.integrations.github.conftest import (
    BASE_SHA,
    REPOSITORY,
    SHA,
    deployed_base,
    prepare_github,
    protection_payload,
    send,
)
from tests.integrations.github.fake import fixture

pytestmark = pytest.mark.django_db

DEPLOYMENT_ID = 1234567  # the deployment of the deployment_protection_rule fixture


def ago(**delta):
    return timezone.now() - timedelta(**delta)


def query(call) -> dict:
    return {k: v[0] for k, v in parse_qs(call.query).items()}


def list_calls(github, repository=REPOSITORY):
    return github.calls_to(rf"^/repos/{repository}/deployments$", "GET")


def status_calls(github, deployment_id):
    return github.calls_to(rf"/deployments/{deployment_id}/statuses$", "GET")


def deliver(client, capture, event, payload):
    with capture(execute=True):
        response = send(client, event, payload)
    assert response.status_code == 202
    return GitHubWebhookDelivery.objects.get(delivery_id=response.json()["delivery"])


@pytest.fixture
def approved_request(client, github, production, octocat, approvers, django_capture_on_commit_callbacks):
    """GitHub asked the portal about deployment 1234567 of SHA; two approvers approved it."""
    deployed_base()
    prepare_github(github)
    deliver(client, django_capture_on_commit_callbacks, "deployment_protection_rule", protection_payload(github))
    request = DeploymentRequest.objects.get()
    for person in approvers[:2]:
        factories.approve(request, person)
    request.refresh_from_db()
    assert request.status == RequestStatus.APPROVED
    assert request.external_ids["github_deployment_id"] == DEPLOYMENT_ID
    return request


# --- unauthorized deployments the webhook missed ------------------------------------------------


def test_a_production_deployment_without_request_whose_webhook_was_lost_is_caught(github, production):
    sha = factories.sha("hotfix")
    github.deploy(REPOSITORY, "production", sha, "queued", "in_progress", "success", at=ago(hours=2), deployment_id=555)

    result = reconciliation.reconcile_github_deployments()

    assert result["recorded"] == 1 and result["violations"] == 1 and result["errors"] == 0
    execution = Execution.objects.exclude(sha=BASE_SHA).get()
    assert execution.external_id == "github-deployment-555"
    assert (execution.environment, execution.sha, execution.status) == (production, sha, ExecutionStatus.SUCCESS)
    assert execution.request is None and not execution.authorized
    assert execution.reported_by.username == "github-app"
    assert execution.url.startswith(f"https://github.com/{REPOSITORY}/actions/runs/")
    violation = Violation.objects.get()
    assert violation.kind == ViolationKind.UNAUTHORIZED_DEPLOYMENT
    assert violation.severity == "critical"
    assert violation.source == "reconciliation"
    missed = violation.evidence["missed_event"]
    assert missed["detected_by"] == "reconciliation" and "webhook" in missed["note"]
    assert missed["github"]["deployment_id"] == 555 and missed["github"]["state"] == "success"
    assert missed["github"]["creator"] == "octocat" and missed["github"]["repository"] == REPOSITORY
    assert violation.evidence["execution"]["external_id"] == "github-deployment-555"
    # GitHub was asked for the environment's deployments, with the App's installation token.
    [listed] = list_calls(github)
    assert query(listed) == {"environment": "production", "per_page": "100"}
    assert listed.headers["Authorization"].startswith("Bearer ghs_")
    assert len(status_calls(github, 555)) == 1


def test_reconciling_again_opens_nothing_new_and_does_not_reread_known_deployments(github, production):
    github.deploy(REPOSITORY, "production", factories.sha("x"), "success", at=ago(hours=1), deployment_id=555)
    reconciliation.reconcile_github_deployments()
    execution = Execution.objects.exclude(sha=BASE_SHA).get()

    again = reconciliation.reconcile_github_deployments()

    assert (again["recorded"], again["violations"], again["known"]) == (0, 0, 1)
    assert Execution.objects.exclude(sha=BASE_SHA).count() == 1 and Violation.objects.count() == 1
    assert Execution.objects.exclude(sha=BASE_SHA).get().updated_at == execution.updated_at
    assert len(status_calls(github, 555)) == 1  # only the first run read its statuses


def test_the_local_rescan_does_not_open_a_second_violation_for_a_reconciled_deployment(github, production):

    github.deploy(REPOSITORY, "production", factories.sha("y"), "success", at=ago(hours=1), deployment_id=556)
    reconciliation.reconcile_github_deployments()
    assert reconciliation_runs.reconcile() == {"executions": 0, "decisions": 0}
    assert Violation.objects.count() == 1


def test_a_deployment_whose_webhook_was_processed_is_left_alone(
    client, github, production, django_capture_on_commit_callbacks
):
    payload = fixture("deployment_status.created", api_url=github.url)
    payload["deployment"]["id"] = 999
    delivery = deliver(client, django_capture_on_commit_callbacks, "deployment_status", payload)
    assert delivery.state == DeliveryState.PROCESSED
    execution = Execution.objects.exclude(sha=BASE_SHA).get()
    violation = Violation.objects.get()
    assert violation.source == "event"
    github.deploy(
        REPOSITORY, "production", SHA, "queued", "in_progress", "success", at=ago(minutes=20), deployment_id=999
    )

    result = reconciliation.reconcile_github_deployments()

    assert (result["deployments"], result["known"], result["recorded"], result["violations"]) == (1, 1, 0, 0)
    assert status_calls(github, 999) == []
    assert list(Execution.objects.all()) == [execution]
    assert Execution.objects.exclude(sha=BASE_SHA).get().updated_at == execution.updated_at
    assert list(Violation.objects.all()) == [violation]


def test_a_deployment_whose_finishing_webhook_was_lost_is_caught_up(
    client, github, approved_request, django_capture_on_commit_callbacks
):
    # The in_progress webhook arrived; the success one was lost: the request hangs in "deploying".
    payload = fixture("deployment_status.created", api_url=github.url)
    payload["deployment_status"]["state"] = "in_progress"
    deliver(client, django_capture_on_commit_callbacks, "deployment_status", payload)
    approved_request.refresh_from_db()
    assert approved_request.status == RequestStatus.DEPLOYING
    github.deploy(REPOSITORY, "production", SHA, "waiting", "in_progress", "success", at=ago(minutes=20),
                  deployment_id=DEPLOYMENT_ID)

    result = reconciliation.reconcile_github_deployments()

    assert (result["known"], result["updated"], result["recorded"], result["violations"]) == (1, 1, 0, 0)
    execution = Execution.objects.exclude(sha=BASE_SHA).get()
    assert execution.status == ExecutionStatus.SUCCESS and execution.authorized
    approved_request.refresh_from_db()
    assert approved_request.status == RequestStatus.DEPLOYED
    assert not Violation.objects.exists()
    # Finished now: the next run does not read its statuses again.
    calls = len(status_calls(github, DEPLOYMENT_ID))
    assert reconciliation.reconcile_github_deployments()["updated"] == 0
    assert len(status_calls(github, DEPLOYMENT_ID)) == calls


# --- deployments of approved requests ------------------------------------------------------------


def test_an_approved_request_deployed_with_another_sha_is_a_sha_mismatch(github, approved_request):
    other = factories.sha("not-what-was-approved")
    github.deploy(
        REPOSITORY,
        "production",
        other,
        "waiting",
        "queued",
        "in_progress",
        "success",
        at=ago(minutes=30),
        deployment_id=DEPLOYMENT_ID,
    )

    result = reconciliation.reconcile_github_deployments()

    assert result["recorded"] == 1 and result["violations"] == 1
    execution = Execution.objects.exclude(sha=BASE_SHA).get()
    assert execution.request == approved_request and execution.sha == other and not execution.authorized
    violation = Violation.objects.get()
    assert violation.kind == ViolationKind.SHA_MISMATCH and violation.source == "reconciliation"
    assert violation.evidence["request"]["id"] == approved_request.pk
    assert violation.evidence["missed_event"]["github"]["sha"] == other


def test_an_approved_in_order_deployment_is_recorded_without_violation(github, approved_request):
    github.deploy(
        REPOSITORY,
        "production",
        SHA,
        "waiting",
        "queued",
        "in_progress",
        "success",
        at=ago(minutes=30),
        deployment_id=DEPLOYMENT_ID,
    )

    result = reconciliation.reconcile_github_deployments()

    assert (result["recorded"], result["violations"]) == (1, 0)
    execution = Execution.objects.exclude(sha=BASE_SHA).get()
    assert execution.authorized and execution.request == approved_request
    assert execution.status == ExecutionStatus.SUCCESS
    assert not Violation.objects.exists()
    approved_request.refresh_from_db()
    assert approved_request.status == RequestStatus.DEPLOYED  # the request moved on as with the webhook


def test_an_approved_deployment_during_a_freeze_is_a_freeze_breach(github, approved_request, production):
    FreezeWindow.objects.create(
        environment=production,
        starts_at=ago(hours=1),
        ends_at=timezone.now() + timedelta(hours=3),
        reason="Quarter-end close",
    )
    github.deploy(
        REPOSITORY, "production", SHA, "waiting", "in_progress", at=ago(minutes=10), deployment_id=DEPLOYMENT_ID
    )
    reconciliation.reconcile_github_deployments()
    violation = Violation.objects.get()
    assert violation.kind == ViolationKind.FREEZE_BREACH and violation.source == "reconciliation"


# --- judged at the time it started, not when it was found -----------------------------------------


def test_a_deployment_that_started_before_its_approval_lapsed_is_authorized(github, approved_request):
    # Approved, deployed 30 minutes ago; the webhook was lost, the approval lapsed 5 minutes ago and
    # the portal's expiry job expired the request (it never heard the deployment start).
    DeploymentRequest.objects.filter(pk=approved_request.pk).update(approval_expires_at=ago(minutes=5))
    assert services.expire_due_requests(actor=None) == 1
    github.deploy(REPOSITORY, "production", SHA, "waiting", "in_progress", "success", at=ago(minutes=30),
                  deployment_id=DEPLOYMENT_ID)

    reconciliation.reconcile_github_deployments()

    execution = Execution.objects.exclude(sha=BASE_SHA).get()
    assert execution.authorized and not execution.flag_reason
    assert ago(minutes=30) < execution.started_at < ago(minutes=28)  # the in_progress status, not "now"
    assert not Violation.objects.exists()
    approved_request.refresh_from_db()
    assert approved_request.status == RequestStatus.EXPIRED  # a final state stays final


def test_a_deployment_that_started_after_its_approval_lapsed_is_a_stale_approval(github, approved_request):
    DeploymentRequest.objects.filter(pk=approved_request.pk).update(approval_expires_at=ago(minutes=20))
    github.deploy(REPOSITORY, "production", SHA, "waiting", "in_progress", at=ago(minutes=10),
                  deployment_id=DEPLOYMENT_ID)

    reconciliation.reconcile_github_deployments()

    violation = Violation.objects.get()
    assert violation.kind == ViolationKind.STALE_APPROVAL and violation.source == "reconciliation"
    assert not Execution.objects.exclude(sha=BASE_SHA).get().authorized


def test_a_freeze_that_began_after_the_deployment_started_is_no_breach(github, approved_request, production):
    FreezeWindow.objects.create(environment=production, starts_at=ago(minutes=10),
                                ends_at=timezone.now() + timedelta(hours=3), reason="Quarter-end close")
    github.deploy(REPOSITORY, "production", SHA, "waiting", "in_progress", "success", at=ago(minutes=40),
                  deployment_id=DEPLOYMENT_ID)

    reconciliation.reconcile_github_deployments()

    assert Execution.objects.exclude(sha=BASE_SHA).get().authorized
    assert not Violation.objects.exists()


def test_started_at_is_the_oldest_status_past_waiting():
    statuses = [  # newest first, as GitHub lists them
        {"state": "success", "created_at": "2026-11-20T10:05:00Z"},
        {"state": "in_progress", "created_at": "2026-11-20T10:02:00Z"},
        {"state": "waiting", "created_at": "2026-11-20T09:00:00Z"},
    ]
    assert reconciliation.started_at(statuses).isoformat() == "2026-11-20T10:02:00+00:00"
    assert reconciliation.started_at([{"state": "waiting", "created_at": "2026-11-20T09:00:00Z"}]) is None
    assert reconciliation.started_at([{"state": "success", "created_at": "not a time"}]) is None


def test_a_start_time_in_the_future_is_not_believed(production):
    bot = factories.UserFactory(username="ci-bot", is_service_account=True)
    execution = services.report_execution(actor=bot, environment=production, sha=SHA, status=ExecutionStatus.SUCCESS,
                                          started_at=timezone.now() + timedelta(days=1))
    assert execution.started_at <= timezone.now()


# --- what counts as a deployment ------------------------------------------------------------------


def test_a_deployment_waiting_for_the_portals_approval_is_not_an_execution_yet(github, approved_request):
    github.deploy(REPOSITORY, "production", SHA, "waiting", at=ago(minutes=5), deployment_id=DEPLOYMENT_ID)
    result = reconciliation.reconcile_github_deployments()
    assert (result["not_started"], result["recorded"]) == (1, 0)
    assert not Execution.objects.exclude(sha=BASE_SHA).exists() and not Violation.objects.exists()

    # Once it runs and its webhooks are lost too, the next run records it.
    github.add_status(REPOSITORY, DEPLOYMENT_ID, "in_progress")
    assert reconciliation.reconcile_github_deployments()["recorded"] == 1
    execution = Execution.objects.exclude(sha=BASE_SHA).get()
    assert execution.status == ExecutionStatus.IN_PROGRESS and not Violation.objects.exists()


def test_a_deployment_turned_down_while_waiting_never_ran(github, production):
    github.deploy(REPOSITORY, "production", factories.sha("r"), "waiting", "failure", at=ago(hours=1), deployment_id=42)
    github.deploy(REPOSITORY, "production", factories.sha("s"), at=ago(hours=1), deployment_id=43)  # no status yet
    result = reconciliation.reconcile_github_deployments()
    assert (result["deployments"], result["not_started"], result["recorded"]) == (2, 2, 0)
    assert not Execution.objects.exclude(sha=BASE_SHA).exists() and not Violation.objects.exists()


def test_a_queued_deployment_is_evidence_and_inactive_does_not_hide_a_deployment(github, production):
    github.deploy(REPOSITORY, "production", factories.sha("q"), "pending", at=ago(hours=3), deployment_id=61)
    github.deploy(
        REPOSITORY,
        "production",
        factories.sha("i"),
        "in_progress",
        "success",
        "inactive",
        at=ago(hours=2),
        deployment_id=62,
    )
    result = reconciliation.reconcile_github_deployments()
    assert result["recorded"] == 2 and result["violations"] == 2
    statuses = dict(Execution.objects.values_list("external_id", "status"))
    assert statuses == {"github-deployment-61": ExecutionStatus.QUEUED, "github-deployment-62": ExecutionStatus.SUCCESS}
    assert set(Violation.objects.values_list("kind", "source")) == {
        (ViolationKind.UNAUTHORIZED_DEPLOYMENT, "reconciliation")
    }


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ([], None),
        (["waiting"], None),
        (["waiting", "failure"], None),
        (["waiting", "error", "inactive"], None),
        (["pending"], "pending"),
        (["failure"], "failure"),
        (["waiting", "queued", "in_progress", "failure"], "failure"),
        (["in_progress", "success", "inactive"], "success"),
        (["exploded"], None),
    ],
)
def test_the_deciding_status(states, expected):
    statuses = [{"state": state} for state in reversed(states)]  # GitHub lists them newest first
    decided = reconciliation.deciding_status(statuses)
    assert (decided["state"] if decided else None) == expected


# --- the window and pagination --------------------------------------------------------------------


def test_deployments_older_than_the_window_are_not_fetched(github, production, settings, monkeypatch):
    settings.PORTAL_RECONCILIATION_DAYS = 2
    monkeypatch.setattr(reconciliation, "PAGE_SIZE", 3)
    for i in range(4):  # in the window (newest first: 104, 103, 102, 101)
        github.deploy(
            REPOSITORY, "production", factories.sha(f"new{i}"), "success", at=ago(hours=10 + i), deployment_id=104 - i
        )
    for i in range(5):  # before it, never looked at
        github.deploy(
            REPOSITORY, "production", factories.sha(f"old{i}"), "success", at=ago(days=3 + i), deployment_id=50 - i
        )

    result = reconciliation.reconcile_github_deployments()

    assert (result["deployments"], result["recorded"]) == (4, 4)
    pages = [query(c) for c in list_calls(github)]
    assert pages == [
        {"environment": "production", "per_page": "3"},
        {"environment": "production", "per_page": "3", "page": "2"},  # followed the Link header
    ]  # page 2 reached an old deployment: page 3 was never requested
    assert all(status_calls(github, d) == [] for d in range(46, 51))
    assert sorted(Execution.objects.values_list("external_id", flat=True)) == [
        f"github-deployment-{d}" for d in range(101, 105)
    ]


def test_the_window_follows_now_and_days(github, production):
    github.deploy(REPOSITORY, "production", factories.sha("w"), "success", at=ago(days=3), deployment_id=70)
    assert reconciliation.reconcile_github_deployments(days=1)["deployments"] == 0
    assert reconciliation.reconcile_github_deployments(days=1, now=ago(days=2, hours=12))["recorded"] == 1


# --- scope and errors -----------------------------------------------------------------------------


def test_unprotected_environments_are_not_reconciled(github, production):
    sandbox = factories.make_environment(service=production.service, name="sandbox", tier=Tier.DEVELOPMENT)
    assert not sandbox.is_protected
    github.deploy(REPOSITORY, "sandbox", factories.sha("sb"), "success", at=ago(hours=1), deployment_id=80)
    github.deploy(REPOSITORY, "production", factories.sha("pr"), "success", at=ago(hours=1), deployment_id=81)

    result = reconciliation.reconcile_github_deployments()

    assert [query(c)["environment"] for c in list_calls(github)] == ["production"]
    assert result["environments"] == 1
    assert list(Execution.objects.values_list("external_id", flat=True)) == ["github-deployment-81"]


def test_services_on_other_ci_systems_are_not_reconciled(github, production):
    gitlab = factories.ServiceFactory(name="billing", repository="octo-org/billing", ci_provider="gitlab")
    factories.make_environment(service=gitlab, name="production", tier=Tier.PRODUCTION)
    result = reconciliation.reconcile_github_deployments()
    assert result["repositories"] == 1
    assert not github.calls_to(r"octo-org/billing")


def test_errors_for_one_repository_do_not_stop_the_others(github, production, caplog):
    for name in ("ledger", "search"):
        service = factories.ServiceFactory(name=name, repository=f"octo-org/{name}")
        factories.make_environment(service=service, name="production", tier=Tier.PRODUCTION)
        github.install(f"octo-org/{name}")
    github.fail("deployments:octo-org/ledger", (500, {}))
    github.fail("deployments:octo-org/search", (404, {}))
    github.deploy(REPOSITORY, "production", factories.sha("ok"), "success", at=ago(hours=1), deployment_id=90)

    with caplog.at_level(logging.WARNING, logger="deployments.integrations.github.reconciliation"):
        result = reconciliation.reconcile_github_deployments()

    assert result["errors"] == 2
    assert result["failed_repositories"] == ["octo-org/ledger", "octo-org/search"]
    assert result["recorded"] == 1  # payments-api was still reconciled
    assert Execution.objects.exclude(sha=BASE_SHA).get().external_id == "github-deployment-90"
    assert "octo-org/ledger" in caplog.text and "HTTP 500" in caplog.text
    assert "octo-org/search" in caplog.text and "HTTP 404" in caplog.text
    assert "ghs_" not in caplog.text and "Bearer" not in caplog.text  # no token in the logs


def test_an_error_reading_statuses_fails_that_repository_only(github, production):
    github.deploy(REPOSITORY, "production", factories.sha("st"), "success", at=ago(hours=1), deployment_id=91)
    github.fail("deployment-statuses", (502, {}))
    result = reconciliation.reconcile_github_deployments()
    assert result["errors"] == 1 and result["failed_repositories"] == [REPOSITORY]
    assert not Execution.objects.exclude(sha=BASE_SHA).exists()
    assert reconciliation.reconcile_github_deployments()["recorded"] == 1  # the next run catches up


def test_a_repository_without_the_app_installed_is_reported(github, production):
    github.installations.clear()
    result = reconciliation.reconcile_github_deployments()
    assert result["not_installed"] == [REPOSITORY] and result["errors"] == 0
    assert list_calls(github) == []


def test_without_the_github_app_nothing_is_called(github, production, settings):
    settings.GITHUB_APP_ID = ""
    github.deploy(REPOSITORY, "production", factories.sha("n"), "success", at=ago(hours=1), deployment_id=95)
    result = reconciliation.reconcile_github_deployments()
    assert result["configured"] is False and "not configured" in result["skipped"]
    assert github.calls == [] and not Execution.objects.exclude(sha=BASE_SHA).exists()


# --- the periodic task ----------------------------------------------------------------------------


def test_the_periodic_task_runs_the_github_and_the_local_reconciliation(github, production):
    from deployments.detection import findings as detection
    from deployments.signals import execution_recorded
    from deployments.tasks import reconcile_deployments

    # A local execution whose detection was lost (a crashed worker) ...
    execution_recorded.disconnect(dispatch_uid="deployments.detection.execution")
    try:
        services.report_execution(
            actor=None, environment=production, sha=factories.sha("local"), status="success", external_id="run-1"
        )
    finally:
        execution_recorded.connect(detection._on_execution_recorded, dispatch_uid="deployments.detection.execution")
    # ... and a GitHub deployment whose webhook was lost.
    github.deploy(REPOSITORY, "production", factories.sha("remote"), "success", at=ago(hours=1), deployment_id=96)

    result = reconcile_deployments.delay().get()

    assert result["executions"] == 1 and result["decisions"] == 0
    assert result["github"]["recorded"] == 1 and result["github"]["violations"] == 1
    assert Violation.objects.count() == 2
    assert set(Violation.objects.values_list("source", flat=True)) == {"reconciliation"}
    assert Violation.objects.filter(evidence__missed_event__github__deployment_id=96).exists()
    run = ReconciliationRun.objects.get()  # kept for the monitoring page
    assert (run.opened, run.sources["github"]["configured"], run.sources["github"]["recorded"], run.ok) == (
        2, True, 1, True)
    assert run.finished_at >= run.started_at and run.result == result


def test_the_periodic_task_skips_github_quietly_when_the_app_is_not_configured(github, production, settings):
    from deployments.tasks import reconcile_deployments

    settings.GITHUB_APP_ID = ""
    result = reconcile_deployments.delay().get()
    assert result["github"]["configured"] is False
    assert (result["executions"], result["decisions"]) == (0, 0)
    assert github.calls == []


def test_the_periodic_task_still_rescans_locally_when_an_integrations_reconciliation_crashes(production, settings):
    from deployments import integrations
    from deployments.tasks import reconcile_deployments

    def crash():
        raise RuntimeError("boom")

    integrations.register_reconciliation_source(integrations.ReconciliationSource("broken-ci", "Broken CI", crash))
    try:
        result = reconcile_deployments.delay().get()
    finally:
        integrations.unregister_reconciliation_source("broken-ci")
    assert result["broken-ci"] == {"configured": True, "failed": "RuntimeError"}
    assert result["github"]["configured"] is False  # the other integration still ran
    assert (result["executions"], result["decisions"]) == (0, 0)
    run = ReconciliationRun.objects.get()
    assert not run.ok and run.error == "Broken CI reconciliation failed: RuntimeError"


def test_the_monitoring_page_shows_whether_reconciliation_runs_and_reaches_github(client, github, production):
    from deployments.tasks import reconcile_deployments

    admin_user = factories.UserFactory(username="ada", roles=[Role.ADMINISTRATOR])
    client.force_login(admin_user)
    html = client.get(reverse("monitoring:index")).content.decode()
    assert "No successful reconciliation in the last 60 minutes" in html  # it never ran

    github.fail(f"deployments:{REPOSITORY}", (500, {"message": "Server Error"}))
    reconcile_deployments.delay().get()
    html = client.get(reverse("monitoring:index")).content.decode()
    assert f"the CI system could not be asked about {REPOSITORY}" in html and "GitHub: 0" in html
    assert "No successful reconciliation" in html

    reconcile_deployments.delay().get()  # GitHub answers again
    html = client.get(reverse("monitoring:index")).content.decode()
    assert "Last successful run" in html and "No successful reconciliation" not in html


def test_administrators_are_alerted_once_when_reconciliation_keeps_failing(
    github, production, mailoutbox, django_capture_on_commit_callbacks
):
    from deployments.tasks import reconcile_deployments

    factories.UserFactory(username="ada", roles=[Role.ADMINISTRATOR], email="ada@example.com")
    github.fail(f"deployments:{REPOSITORY}", *[(502, {"message": "Bad Gateway"})] * 6)
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            reconcile_deployments.delay().get()
    assert mailoutbox == []  # three failures: not yet an hour
    with django_capture_on_commit_callbacks(execute=True):
        reconcile_deployments.delay().get()
    (mail,) = mailoutbox
    assert mail.to == ["ada@example.com"] and "failed 4 times in a row" in mail.subject
    assert REPOSITORY in mail.body and "/monitoring/" in mail.body
    with django_capture_on_commit_callbacks(execute=True):
        reconcile_deployments.delay().get()  # still failing: no second e-mail the same day
    assert len(mailoutbox) == 1
    assert ReconciliationRun.objects.filter(alerted_at__isnull=False).count() == 1


def test_one_clean_run_among_the_last_four_means_no_alert(github, production, mailoutbox,
                                                          django_capture_on_commit_callbacks):
    from deployments.tasks import reconcile_deployments

    factories.UserFactory(username="ada", roles=[Role.ADMINISTRATOR], email="ada@example.com")
    github.fail(f"deployments:{REPOSITORY}", *[(502, {"message": "Bad Gateway"})] * 3)
    for _ in range(4):  # three failures, then GitHub answers again
        with django_capture_on_commit_callbacks(execute=True):
            reconcile_deployments.delay().get()
    assert [run.ok for run in ReconciliationRun.objects.all()] == [True, False, False, False]
    assert mailoutbox == []
