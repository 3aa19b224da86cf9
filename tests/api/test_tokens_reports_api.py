"""The reports API honours API tokens: the ``read`` action, and service/environment scopes.

Security issue 11 (API tokens, item 7): an ``execute``-only token scoped to one staging environment
downloaded the whole authorization log; scopes are now applied to report rows, fail closed.
"""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.contrib.auth.models import Group
from django.core.cache import caches
from guardian.shortcuts import assign_perm

from compliance.errors import RuleViolation
from compliance.people.roles import Role
from compliance.reports.models import ReportExport
from deployments.api import tokens
from deployments.choices import Action, RequestStatus, Tier, TokenAction
from deployments.gate import services
from deployments.models import Refusal
from tests import factories
from tests.api.test_tokens_security import assert_error, bearer


@pytest.fixture
def production(db):
    return factories.make_environment(name="production", tier=Tier.PRODUCTION)


@pytest.fixture
def report_world(environment, production, requester, approvers):
    """Requests in staging and in production, a refusal in each, and group grants on both."""
    factories.grant(requester, "request", production)
    emergency = {"ref": "main", "is_emergency": True, "justification": "Hotfix for a customer outage"}
    staging_request = services.submit_request(actor=requester, environment=environment, sha=factories.sha("s"),
                                              **emergency)
    production_request = services.submit_request(actor=requester, environment=production, sha=factories.sha("p"),
                                                 **emergency)
    for request in (staging_request, production_request):
        with pytest.raises(RuleViolation):
            services.cancel_request(actor=approvers[0], request=request, reason="not mine")
    group = Group.objects.create(name="release-team")
    member = factories.approver(username="gwen")
    member.groups.add(group)
    assign_perm("deployments.approve_deployment", group, environment)
    assign_perm("deployments.approve_deployment", group, production)
    return {"staging": staging_request, "production": production_request}


@pytest.fixture
def reader(db):
    """An administrator reading reports through the API with tokens they made themselves."""
    return factories.UserFactory(username="rhea-reader", roles=[Role.ADMINISTRATOR])


def _json_rows(response) -> list[dict]:
    assert response.status_code == 200, response.content[:500]
    return json.loads(b"".join(response.streaming_content))


def test_an_execute_only_staging_token_cannot_download_the_authorization_log(reader, environment, report_world):
    _, clear = tokens.create_api_token(actor=reader, user=reader, name="deployer", actions=[TokenAction.EXECUTE],
                                       environments=[environment])
    client = bearer(clear)
    error = assert_error(client.get("/api/v1/reports/deployment-authorization-log/"), 403, "token_scope")
    assert error["details"]["needed_action"] == "read"
    assert_error(client.get("/api/v1/reports/deployment-authorization-log/?format=csv"), 403, "token_scope")
    assert_error(client.get("/api/v1/reports/"), 403, "token_scope")
    refusal = Refusal.objects.filter(code="token_scope", action=Action.READ_REPORT).order_by("id").first()
    assert refusal is not None and refusal.actor == reader
    assert refusal.details["report"] == "deployment-authorization-log"
    assert not ReportExport.objects.exists()


def test_a_read_token_scoped_to_staging_gets_only_staging_rows(reader, environment, report_world):
    _, clear = tokens.create_api_token(actor=reader, user=reader, name="staging auditor",
                                       actions=[TokenAction.READ], environments=[environment])
    client = bearer(clear)
    log = _json_rows(client.get("/api/v1/reports/deployment-authorization-log/"))
    assert [row["request_id"] for row in log] == [report_world["staging"].pk]
    sod = _json_rows(client.get("/api/v1/reports/separation-of-duties-exceptions/"))
    assert [row["request_id"] for row in sod if row["kind"] == "emergency request"] == [report_world["staging"].pk]
    assert {row["environment"] for row in sod} == {"staging"}
    refusals = _json_rows(client.get("/api/v1/reports/refusals/"))
    assert refusals and {row["environment"] for row in refusals} == {"staging"}
    access = _json_rows(client.get("/api/v1/reports/access-review/"))
    assert access and {(row["service"], row["environment"]) for row in access} == {
        (environment.service.name, "staging")
    }
    assert any(row["grantee"] == "group release-team" for row in access)
    csv_body = b"".join(client.get("/api/v1/reports/deployment-authorization-log/?format=csv").streaming_content)
    assert len(list(csv.reader(io.StringIO(csv_body.decode())))) == 2  # header + the staging request
    assert ReportExport.objects.filter(user=reader, channel="api").count() == 5


def test_a_scoped_token_asking_for_another_environment_gets_nothing(reader, environment, production, report_world):
    _, clear = tokens.create_api_token(actor=reader, user=reader, name="staging", actions=[TokenAction.READ],
                                       environments=[environment])
    rows = _json_rows(bearer(clear).get(
        f"/api/v1/reports/deployment-authorization-log/?service={production.service.name}&environment=production"
    ))
    assert rows == []


def test_a_service_scoped_token_gets_only_that_services_rows(reader, production, report_world):
    _, clear = tokens.create_api_token(actor=reader, user=reader, name="prod svc", actions=[TokenAction.READ],
                                       services=[production.service])
    log = _json_rows(bearer(clear).get("/api/v1/reports/deployment-authorization-log/"))
    assert [row["request_id"] for row in log] == [report_world["production"].pk]


def test_a_scoped_token_cannot_read_a_report_that_cannot_be_scoped(reader, environment, report_world):
    _, clear = tokens.create_api_token(actor=reader, user=reader, name="staging", actions=[TokenAction.READ],
                                       environments=[environment])
    client = bearer(clear)
    for slug in ("training-compliance", "report-exports", "violations"):
        assert_error(client.get(f"/api/v1/reports/{slug}/"), 403, "report_not_scopable")
    assert Refusal.objects.filter(code="report_not_scopable", actor=reader, action=Action.READ_REPORT).count() == 3
    listed = {report["slug"] for report in client.get("/api/v1/reports/").json()}
    assert listed == {"deployment-authorization-log", "separation-of-duties-exceptions", "access-review", "refusals",
                      "emergency-reviews", "delivery-metrics"}


def test_a_read_token_whose_scope_was_deleted_reads_no_rows(reader, report_world):
    doomed = factories.make_environment(name="qa")
    _, clear = tokens.create_api_token(actor=reader, user=reader, name="qa", actions=[TokenAction.READ],
                                       environments=[doomed])
    doomed.delete()
    caches["default"].clear()
    assert _json_rows(bearer(clear).get("/api/v1/reports/deployment-authorization-log/")) == []
    assert _json_rows(bearer(clear).get("/api/v1/reports/refusals/")) == []


def test_an_unscoped_read_token_reads_every_report(reader, report_world):
    _, clear = tokens.create_api_token(actor=reader, user=reader, name="auditor", actions=[TokenAction.READ])
    client = bearer(clear)
    assert len(_json_rows(client.get("/api/v1/reports/deployment-authorization-log/"))) == 2
    assert client.get("/api/v1/reports/training-compliance/").status_code == 200
    assert len(client.get("/api/v1/reports/").json()) >= 8


def test_a_browser_session_reads_reports_unnarrowed(client, reader, report_world):
    client.force_login(reader)
    assert len(_json_rows(client.get("/api/v1/reports/deployment-authorization-log/"))) == 2
    assert RequestStatus.AWAITING_APPROVAL in {r["status"] for r in _json_rows(
        client.get("/api/v1/reports/deployment-authorization-log/"))}


def test_an_unrecognised_credential_reads_nothing(reader):
    from compliance.reports.access import credential_scope

    scope, policy = credential_scope(object())
    assert not scope.may_read and policy is None
