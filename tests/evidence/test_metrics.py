"""DORA and approval metrics: the figures on known data, the page with its charts, the API and the report.

Runs on SQLite (figures computed in Python) and, in CI, on PostgreSQL (one aggregate query per
figure): the same expected numbers on both."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from compliance.reports.registry import Filters
from deployments.api import tokens
from deployments.evidence.reports import metric_rows
from deployments.metrics.queries import Period, approver_waits, dora_metrics, percentile
from deployments.models import Approval, DeploymentRequest
from tests import factories

pytestmark = pytest.mark.django_db
DAY = date(2026, 3, 10)
PERIOD = Period(DAY, DAY + timedelta(days=1))


def at(hours: float) -> datetime:
    return datetime(2026, 3, 10, tzinfo=UTC) + timedelta(hours=hours)


def test_percentiles_interpolate_like_postgresql():
    assert percentile([], 0.5) is None
    assert percentile([4.0], 0.95) == 4.0
    assert percentile([1, 2, 3, 4], 0.5) == 2.5
    assert percentile([0, 10], 0.95) == pytest.approx(9.5)


@pytest.fixture
def history(deployed, approvers):
    """Four deployments to one environment on 2026-03-10: ok, FAILED, ok (restores after 2 h), ok.
    Each was requested 1 h before its approval, which came (hours) after 00:00; the first names its
    first commit 5 h before it was deployed."""
    from deployments.choices import ExecutionStatus

    plan = [(1, ExecutionStatus.SUCCESS), (3, ExecutionStatus.FAILURE), (5, ExecutionStatus.SUCCESS),
            (7, ExecutionStatus.SUCCESS)]
    rows = []
    for hour, status in plan:
        request = deployed(status=status)
        DeploymentRequest.objects.filter(pk=request.pk).update(
            created_at=at(hour - 1), decided_at=at(hour - 0.5), finished_at=at(hour))
        Approval.objects.filter(request=request).update(created_at=at(hour - 0.5))
        rows.append(request)
    DeploymentRequest.objects.filter(pk=rows[0].pk).update(first_commit_at=at(-4))
    return rows


def test_the_five_figures_on_known_data(history, environment):
    [row] = dora_metrics(PERIOD)
    assert (row["service"], row["environment"]) == (environment.service.name, "staging")
    assert row["deployments"] == 3 and row["failed_deployments"] == 1
    assert row["deployment_frequency_per_day"] == 1.5  # 3 successes over 2 days
    # lead times of the successes: 5 h (from the first commit), 1 h, 1 h
    assert row["lead_time_p50_hours"] == 1.0 and row["lead_time_p95_hours"] == pytest.approx(4.6)
    assert row["change_failure_rate"] == 0.25
    assert row["restores"] == 1 and row["time_to_restore_p50_hours"] == 2.0
    assert row["approved_requests"] == 4 and row["approval_wait_p50_hours"] == 0.5
    [wait] = approver_waits(PERIOD)
    assert wait == {"approver": "approver0", "decisions": 4, "wait_p50_hours": 0.5, "wait_p95_hours": 0.5}


def test_a_period_without_deployments_and_an_out_of_scope_environment_show_nothing(history, environment):
    assert dora_metrics(Period(date(2025, 1, 1), date(2025, 1, 2))) == []
    assert dora_metrics(PERIOD, environment_ids=[]) == []
    assert dora_metrics(PERIOD, service="no-such-service") == []


def test_the_page_draws_the_charts_in_constant_queries(client, history, auditor, environment):
    client.force_login(auditor)
    url = "/metrics/?date_from=2026-03-10&date_to=2026-03-11"

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        assert response.status_code == 200
        return len(queries)

    few = count()
    page = client.get(url).content.decode()
    assert page.count("<svg") == 6 and "Change failure rate" in page and "25.0 %" in page
    assert "<script" not in page.split('id="metric-charts"')[1].split("</div>")[0]
    other = factories.make_environment(name="eu")
    factories.UserFactory()
    DeploymentRequest.objects.filter(pk=history[2].pk).update(environment=other)
    assert count() == few


def test_the_page_must_refuse_bad_periods_and_people_without_environments(client, auditor):
    client.force_login(auditor)
    assert client.get("/metrics/?date_from=2026-03-10&date_to=2026-03-01").status_code == 400
    assert client.get("/metrics/?date_from=2024-01-01&date_to=2026-01-01").status_code == 400
    client.force_login(factories.UserFactory(roles=[]))
    assert client.get("/metrics/").status_code == 403


def test_the_api_gives_the_figures_within_the_callers_scope(history, environment, requester):
    _, clear = tokens.create_api_token(actor=requester, user=requester, name="metrics", actions=["read"])
    api = Client(HTTP_AUTHORIZATION=f"Bearer {clear}")
    dora = api.get("/api/v1/metrics/dora/?from=2026-03-10&to=2026-03-11")
    assert dora.status_code == 200, dora.content
    body = dora.json()
    assert body["period"] == {"date_from": "2026-03-10", "date_to": "2026-03-11", "days": 2}
    assert body["environments"][0]["change_failure_rate"] == 0.25
    approvals = api.get("/api/v1/metrics/approvals/?from=2026-03-10&to=2026-03-11").json()
    assert approvals["approvers"][0]["approver"] == "approver0"
    outsider = factories.engineer(factories.make_environment(name="elsewhere"))
    _, other = tokens.create_api_token(actor=outsider, user=outsider, name="metrics")
    assert Client(HTTP_AUTHORIZATION=f"Bearer {other}").get(
        "/api/v1/metrics/dora/?from=2026-03-10&to=2026-03-11").json()["environments"] == []


@pytest.mark.parametrize(("query", "status", "code"), [
    ("?from=2026-03-11&to=2026-03-10", 400, "invalid_period"),
    ("?from=2020-01-01&to=2026-01-01", 400, "period_too_long"),
    ("?from=yesterday", 400, "invalid"),
    ("?sort=desc", 400, "unknown_field"),
])
def test_the_api_must_refuse_bad_queries_in_the_common_format(requester, query, status, code):
    _, clear = tokens.create_api_token(actor=requester, user=requester, name="metrics")
    response = Client(HTTP_AUTHORIZATION=f"Bearer {clear}").get(f"/api/v1/metrics/dora/{query}")
    assert response.status_code == status and response.json()["error"]["code"] == code


def test_the_api_must_refuse_anonymous_callers_and_is_in_the_schema(db):
    assert Client().get("/api/v1/metrics/dora/").status_code in (401, 403)
    schema = Client().get("/api/schema/", HTTP_ACCEPT="application/json").content.decode()
    assert "/api/v1/metrics/dora/" in schema and "/api/v1/metrics/approvals/" in schema


def test_the_report_lists_environments_then_approvers(history):
    rows = list(metric_rows(Filters(date_from=DAY, date_to=DAY + timedelta(days=1))))
    assert [row["scope"] for row in rows] == ["environment", "approver"]
    assert rows[1]["environment"] == "approver0" and rows[1]["decisions"] == 4


def test_the_first_commit_time_is_taken_from_the_change_set_and_malformed_ones_are_ignored(submit):
    from deployments.gate.services.requests import first_commit_at

    assert first_commit_at({"first_commit_at": "2026-03-10T07:00:00Z"}) == datetime(2026, 3, 10, 7, tzinfo=UTC)
    for bad in ({"first_commit_at": "yesterday"}, {"first_commit_at": "2026-03-10T07:00:00"}, {"first_commit_at": 5},
                {}, None):
        assert first_commit_at(bad) is None
    request = submit(change_set={"first_commit_at": "2026-03-10T07:00:00+02:00"})
    assert request.first_commit_at == datetime(2026, 3, 10, 5, tzinfo=UTC)
