"""A Jenkins build from waiting on its input to the authorization log: the whole path, for real."""

from __future__ import annotations

import json

import pytest

from compliance.reports import registry
from compliance.reports.registry import Filters
from deployments.choices import DeliveryStatus, RequestStatus
from deployments.integrations.jenkins.models import InputAnswer, JenkinsBuild
from deployments.models import DecisionDelivery, Execution
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


def test_a_waiting_build_is_approved_told_deploys_and_shows_in_the_authorization_log(
    jenkins, production, pipeline, engineer, approvers, django_capture_on_commit_callbacks
):
    deployed_base(production)
    build = jenkins.start_build(JOB, 12, SHA, parameters=["PORTAL_APPROVERS", "PORTAL_REQUEST_URL"])
    build_url = jenkins.build_url(JOB, 12)

    # 1. The gate stage asks the portal, naming its build and input; the build waits on the input.
    with django_capture_on_commit_callbacks(execute=True):
        created = request_gate(pipeline, gate_body(build_url, input_id="portal"))
    assert created.status_code == 201, created.content
    request = the_request()
    assert request.status == RequestStatus.AWAITING_APPROVAL
    linked = JenkinsBuild.objects.get(request=request)
    assert (linked.build_url, linked.input_id, linked.job_path, linked.build_number) == (
        build_url,
        "Portal",
        "payments/deploy",
        12,
    )
    assert not jenkins.posts(), "nothing is answered before the decision"

    # 2. Two approvers approve; the outbox answers the input with who approved and the request link.
    approve_all(request, approvers, django_capture_on_commit_callbacks)
    delivery = DecisionDelivery.objects.get(request=request, provider="jenkins")
    assert delivery.status == DeliveryStatus.DELIVERED
    [submit] = jenkins.posts("/input/Portal/submit")
    assert submit.user == "deployment-portal" and submit.crumb
    assert submit.form["proceed"] == "Proceed"
    parameters = {p["name"]: p["value"] for p in json.loads(submit.form["json"])["parameter"]}
    assert parameters == {
        "PORTAL_APPROVERS": "prod-approver0, prod-approver1",
        "PORTAL_REQUEST_URL": f"https://portal.example.com/requests/{request.pk}/",
    }
    assert build.approvers == ["deployment-portal"] and not build.inputs
    linked.refresh_from_db()
    assert linked.answer == InputAnswer.PROCEEDED

    # 3. The deploy stage runs; the post steps report it through the API (external id = BUILD_URL).
    jenkins.deploy(build, finish=False)
    started = pipeline.post(
        f"/api/v1/requests/{request.pk}/executions/",
        {"status": "started", "external_id": build_url, "url": build_url},
        content_type="application/json",
    )
    assert started.status_code == 201 and started.json()["authorized"] is True
    jenkins.deploy(build, "SUCCESS")
    done = pipeline.post(
        f"/api/v1/requests/{request.pk}/executions/",
        {"status": "succeeded", "external_id": build_url, "url": build_url},
        content_type="application/json",
    )
    assert done.status_code == 201
    request.refresh_from_db()
    assert request.status == RequestStatus.DEPLOYED
    execution = Execution.objects.get(external_id=build_url)
    assert execution.authorized and execution.sha == SHA

    # 4. The authorization log has the row: decisions, delivery to Jenkins, the execution.
    rows = [
        r for r in registry.get("deployment-authorization-log").iter_rows(Filters()) if r["request_id"] == request.pk
    ]
    [row] = rows
    assert row["status"] == RequestStatus.DEPLOYED
    assert "prod-approver0" in row["approvals"] and "prod-approver1" in row["approvals"]
    assert "jenkins" in row["delivery"] and "delivered" in row["delivery"]
    assert row["execution_status"] == "success" and row["deployed_sha"] == SHA
    assert row["unauthorized"] is False
