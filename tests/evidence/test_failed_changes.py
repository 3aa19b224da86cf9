"""Failed changes beyond failed executions (issue 17): deployments flagged as failed changes and
deployments followed by a rollback, counted in the change failure rate and the time to restore.

Runs on SQLite (figures computed in Python) and, in CI, on PostgreSQL (one aggregate query per
figure): the same expected numbers on both, as in test_metrics.py."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.test import Client

from compliance.errors import RuleViolation
from compliance.people.roles import Role
from deployments.api import tokens
from deployments.choices import Action, EventKind, ExecutionStatus
from deployments.evidence import services as evidence
from deployments.gate import services
from deployments.metrics.queries import Period, dora_metrics
from deployments.models import DeploymentRequest, Execution, FailedChangeFlag, Refusal, RequestEvent
from tests import factories

pytestmark = pytest.mark.django_db
DAY = date(2026, 3, 10)
PERIOD = Period(DAY, DAY)
A, B, C, D = (factories.sha(label) for label in "abcd")


@pytest.fixture
def ship(environment, requester, approvers):
    """Deploy ``sha`` to the environment through the portal (request, approval, CI's report), then place
    it at ``hour`` of 2026-03-10 (the order of the calls is the order of the deployments)."""

    def _ship(sha: str, hour: float, status: str = ExecutionStatus.SUCCESS) -> DeploymentRequest:
        request = services.submit_request(actor=requester, environment=environment, sha=sha, ref="main")
        factories.approve(request, approvers[0], comment="Looks right.")
        services.report_execution(actor=requester, environment=environment, sha=sha, status=status,
                                  request=request, external_id=f"run-{request.pk}")
        moment = datetime(2026, 3, 10, tzinfo=UTC) + timedelta(hours=hour)
        DeploymentRequest.objects.filter(pk=request.pk).update(
            created_at=moment - timedelta(hours=1), decided_at=moment - timedelta(minutes=30), finished_at=moment)
        request.refresh_from_db()
        return request

    return _ship


def _row() -> dict:
    [row] = dora_metrics(PERIOD)
    return row


def _execution(request: DeploymentRequest) -> Execution:
    return Execution.objects.get(request=request)


# --- rollbacks --------------------------------------------------------------------------------------


def test_going_back_to_an_earlier_sha_marks_the_replaced_deployment_and_counts_as_a_failed_change(ship):
    first, replaced, rollback = ship(A, 1), ship(B, 3), ship(A, 4)
    replaced.refresh_from_db()
    assert replaced.rolled_back_by_id == rollback.pk
    first.refresh_from_db()
    rollback.refresh_from_db()
    assert first.rolled_back_by_id is None and rollback.rolled_back_by_id is None
    assert RequestEvent.objects.filter(request=replaced, kind=EventKind.ROLLED_BACK).count() == 1
    row = _row()
    assert row["deployments"] == 3 and row["failed_deployments"] == 0
    assert row["rolled_back_deployments"] == 1 and row["flagged_deployments"] == 0 and row["failed_changes"] == 1
    assert row["change_failure_rate"] == round(1 / 3, 4)  # 0.0 before rollbacks were counted
    assert row["restores"] == 1 and row["time_to_restore_p50_hours"] == 1.0  # B at 3 h, back to A at 4 h


@pytest.mark.parametrize("plan", [
    [(A, 1), (A, 2)],  # the same version again
    [(A, 1), (B, 2), (C, 3)],  # always forward
    [(A, 1), (B, 2), (B, 3)],  # B redeployed
])
def test_redeploying_or_moving_forward_is_not_a_rollback(ship, plan):
    for sha, hour in plan:
        ship(sha, hour)
    assert not DeploymentRequest.objects.filter(rolled_back_by__isnull=False).exists()
    assert _row()["failed_changes"] == 0 and _row()["change_failure_rate"] == 0.0


def test_a_failed_attempt_to_go_back_is_no_rollback(ship):
    ship(A, 1)
    replaced = ship(B, 2)
    ship(A, 3, status=ExecutionStatus.FAILURE)
    replaced.refresh_from_db()
    assert replaced.rolled_back_by_id is None
    row = _row()
    assert (row["failed_deployments"], row["rolled_back_deployments"], row["failed_changes"]) == (1, 0, 1)


# --- flags: who may, and what is refused ---------------------------------------------------------------


def test_an_approver_or_an_administrator_of_the_environment_may_flag_a_deployment(ship, approvers):
    deployment = ship(A, 1)
    flag = evidence.flag_failed_change(actor=approvers[1], execution=_execution(deployment),
                                       reason="INC-42: checkout errors after this release.")
    deployment.refresh_from_db()
    assert deployment.failed_change_at == flag.created_at and flag.request == deployment
    assert RequestEvent.objects.filter(request=deployment, kind=EventKind.FAILED_CHANGE,
                                       message__startswith="INC-42").exists()
    admin = factories.UserFactory(roles=[Role.ADMINISTRATOR])
    second = evidence.flag_failed_change(actor=admin, execution=_execution(deployment),
                                         reason="INC-43: the same release broke refunds too.")
    deployment.refresh_from_db()
    assert FailedChangeFlag.objects.filter(request=deployment).count() == 2
    assert deployment.failed_change_at == flag.created_at < second.created_at  # counted once, from the first


def test_the_engineer_of_the_environment_and_an_outsider_may_not_flag_and_are_recorded(ship, requester):
    deployment = ship(A, 1)
    outsider = factories.approver(factories.make_environment(name="elsewhere"))
    for person in (requester, outsider):
        with pytest.raises(RuleViolation) as refused:
            evidence.flag_failed_change(actor=person, execution=_execution(deployment),
                                        reason="INC-42: checkout errors after this release.")
        assert refused.value.code == "not_permitted" and refused.value.status_code == 403
        assert Refusal.objects.filter(actor=person, action=Action.FLAG_FAILED_CHANGE, code="not_permitted",
                                      request=deployment).count() == 1
    deployment.refresh_from_db()
    assert deployment.failed_change_at is None and not FailedChangeFlag.objects.exists()


@pytest.mark.parametrize(("status", "reason", "code"), [
    (ExecutionStatus.SUCCESS, "  short ", "reason_required"),
    (ExecutionStatus.SUCCESS, "", "reason_required"),
    (ExecutionStatus.FAILURE, "INC-42: it failed, and that already counts.", "not_a_deployment"),
])
def test_a_flag_needs_a_reason_and_a_successful_deployment(ship, approvers, status, reason, code):
    deployment = ship(A, 1, status=status)
    with pytest.raises(RuleViolation) as refused:
        evidence.flag_failed_change(actor=approvers[0], execution=_execution(deployment), reason=reason)
    assert refused.value.code == code
    assert Refusal.objects.filter(action=Action.FLAG_FAILED_CHANGE, code=code, request=deployment).exists()
    assert not FailedChangeFlag.objects.exists()


# --- flags in the figures ------------------------------------------------------------------------------


def test_a_flagged_deployment_starts_an_outage_until_the_next_good_deployment(ship, approvers):
    ship(A, 1)
    flagged = ship(B, 3)
    ship(C, 4, status=ExecutionStatus.FAILURE)  # the outage goes on: not a second start
    ship(D, 6)
    evidence.flag_failed_change(actor=approvers[0], execution=_execution(flagged),
                                reason="INC-42: checkout errors after this release.")
    row = _row()
    assert (row["deployments"], row["failed_deployments"], row["flagged_deployments"]) == (3, 1, 1)
    assert row["failed_changes"] == 2 and row["change_failure_rate"] == 0.5
    assert row["restores"] == 1 and row["time_to_restore_p50_hours"] == 3.0  # B at 3 h to D at 6 h


def test_a_flagged_rollback_target_is_not_a_restore(ship, approvers):
    """The rollback itself flagged: the outage goes on until the next good deployment."""
    ship(A, 1)
    ship(B, 2)
    rollback = ship(A, 3)
    ship(C, 5)
    evidence.flag_failed_change(actor=approvers[0], execution=_execution(rollback),
                                reason="INC-44: the old version could not read the new data.")
    row = _row()
    assert row["failed_changes"] == 2 and row["change_failure_rate"] == 0.5
    assert row["restores"] == 1 and row["time_to_restore_p50_hours"] == 3.0  # B at 2 h to C at 5 h


# --- the pages, the admin, the story and the API ---------------------------------------------------------


def test_the_request_page_offers_the_flag_to_approvers_only_and_shows_it(client, ship, approvers, auditor):
    deployment = ship(A, 1)
    page = f"/requests/{deployment.pk}/"
    client.force_login(auditor)
    assert 'id="flag-failed-change-link"' not in client.get(page).content.decode()
    refused = client.post(f"{page}failed-change/", {"reason": "INC-42: checkout errors after this release."})
    assert refused.status_code == 403 and not FailedChangeFlag.objects.exists()
    client.force_login(approvers[0])
    assert 'id="flag-failed-change-link"' in client.get(page).content.decode()
    assert client.post(f"{page}failed-change/", {"reason": "short"}).status_code == 400
    done = client.post(f"{page}failed-change/", {"reason": "INC-42: checkout errors after this release."})
    assert done.status_code == 302 and FailedChangeFlag.objects.get().flagged_by == approvers[0]
    assert "INC-42: checkout errors" in client.get(page).content.decode()
    client.force_login(auditor)
    story = client.get(f"/requests/{deployment.pk}/story/").content.decode()
    assert 'id="story-failed-change-flags"' in story and "INC-42" in story
    data = client.get(f"/requests/{deployment.pk}/story.json").json()
    assert data["failed_change"]["flags"][0]["by"] == approvers[0].username
    flag_id = FailedChangeFlag.objects.get().pk
    chained = data["audit_chain"]["links"] + data["audit_chain"]["not_yet_sealed"]
    assert {"model": "deployments.failedchangeflag", "id": flag_id} in [
        {"model": row["model"], "id": row["id"]} for row in chained]


def test_the_admin_action_opens_the_flag_page_for_one_execution(client, ship):
    deployment = ship(A, 1)
    execution = _execution(deployment)
    client.force_login(factories.UserFactory(roles=[Role.ADMINISTRATOR], is_staff=True, is_superuser=True))
    response = client.post("/admin/deployments/execution/", {
        "action": "flag_failed_change", "_selected_action": [execution.pk]})
    assert response.status_code == 302
    assert response["Location"] == f"/requests/{deployment.pk}/failed-change/?execution={execution.pk}"
    assert client.get(response["Location"]).status_code == 200


def test_the_api_shows_the_breakdown_and_the_schema_documents_it(ship, requester):
    ship(A, 1)
    ship(B, 2)
    ship(A, 3)
    _, clear = tokens.create_api_token(actor=requester, user=requester, name="metrics", actions=["read"])
    body = Client(HTTP_AUTHORIZATION=f"Bearer {clear}").get("/api/v1/metrics/dora/?from=2026-03-10&to=2026-03-10")
    row = body.json()["environments"][0]
    assert (row["rolled_back_deployments"], row["flagged_deployments"], row["failed_changes"]) == (1, 0, 1)
    schema = Client().get("/api/schema/", HTTP_ACCEPT="application/json").content.decode()
    assert "rolled_back_deployments" in schema and "flagged_deployments" in schema
