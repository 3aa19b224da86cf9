"""Ticket, risk level, impact and rollback plan: required by the policy, refused with a clear code,
passed through the API and the web form, shown to approvers."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from compliance.errors import RuleViolation
from deployments.api import tokens
from deployments.gate import policy, services
from deployments.models import DeploymentRequest, Refusal
from tests import factories

STRICT = policy.PolicyRules(ticket_required=True, risk_level_required=True, impact_required=True,
                            rollback_plan_required=True, ticket_url_template="https://jira.example.com/browse/{ticket}")
FULL = policy.ChangeRecord(ticket="PAY-123", risk_level="low", impact="Checkout page only.",
                           rollback_plan="Redeploy the previous tag.")


# --- the pure rule ----------------------------------------------------------------------------------


def test_a_complete_change_record_passes_the_strict_policy():
    policy.validate_change_record(FULL, STRICT)


@pytest.mark.parametrize(("record", "code"), [
    (policy.ChangeRecord(risk_level="low", impact="x" * 10, rollback_plan="y" * 10), "ticket_required"),
    (policy.ChangeRecord(ticket="pay-123", risk_level="low", impact="x" * 10, rollback_plan="y" * 10),
     "invalid_ticket"),
    (policy.ChangeRecord(ticket="PAY 123", risk_level="low", impact="x" * 10, rollback_plan="y" * 10),
     "invalid_ticket"),
    (policy.ChangeRecord(ticket="PAY-1", impact="x" * 10, rollback_plan="y" * 10), "risk_level_required"),
    (policy.ChangeRecord(ticket="PAY-1", risk_level="severe", impact="x" * 10, rollback_plan="y" * 10),
     "invalid_risk_level"),
    (policy.ChangeRecord(ticket="PAY-1", risk_level="low", impact="short", rollback_plan="y" * 10), "impact_required"),
    (policy.ChangeRecord(ticket="PAY-1", risk_level="low", impact="x" * 10), "rollback_plan_required"),
])
def test_each_missing_or_malformed_part_is_refused_with_its_code(record, code):
    with pytest.raises(RuleViolation) as refused:
        policy.validate_change_record(record, STRICT)
    assert refused.value.code == code and refused.value.status_code == 400


def test_a_ticket_is_checked_against_the_pattern_even_where_none_is_required():
    with pytest.raises(RuleViolation, match="does not match"):
        policy.validate_change_record(policy.ChangeRecord(ticket="not-a-ticket"), policy.PolicyRules())
    policy.validate_change_record(policy.ChangeRecord(), policy.PolicyRules())  # nothing required, nothing given


def test_other_ticket_systems_use_their_own_pattern_and_an_invalid_pattern_matches_nothing():
    servicenow = policy.PolicyRules(ticket_required=True, ticket_pattern=r"CHG\d{7}")
    policy.validate_change_record(policy.ChangeRecord(ticket="CHG0001234"), servicenow)
    with pytest.raises(RuleViolation):
        policy.validate_change_record(policy.ChangeRecord(ticket="PAY-1"), servicenow)
    assert not policy.ticket_matches("PAY-1", "([unclosed")


def test_the_ticket_link_is_built_from_the_template_and_escaped():
    assert policy.ticket_url("PAY-1", "https://jira.example.com/browse/{ticket}") == (
        "https://jira.example.com/browse/PAY-1")
    assert policy.ticket_url("#12", "https://github.com/acme/app/issues/{ticket}").endswith("/%2312")
    assert policy.ticket_url("PAY-1", "") == ""


def test_the_snapshot_keeps_the_change_record_rules():
    assert policy.PolicyRules.from_snapshot(STRICT.snapshot()) == STRICT
    assert policy.PolicyRules.from_snapshot({}).ticket_required is False  # older snapshots


# --- the service, the API and the web form --------------------------------------------------------


@pytest.fixture
def strict_environment(db):
    return factories.make_environment(
        name="staging", require_ticket=True, require_risk_level=True, require_impact=True, require_rollback_plan=True,
        ticket_url_template="https://jira.example.com/browse/{ticket}",
    )


def test_the_service_refuses_a_request_without_its_ticket_and_keeps_the_refusal(strict_environment):
    person = factories.engineer(strict_environment)
    with pytest.raises(RuleViolation) as refused:
        services.submit_request(actor=person, environment=strict_environment, sha=factories.sha(), ref="main")
    assert refused.value.code == "ticket_required"
    assert not DeploymentRequest.objects.exists()
    assert Refusal.objects.get().code == "ticket_required"


def _api(user) -> Client:
    _, clear = tokens.create_api_token(actor=user, user=user, name="ci")
    client = Client()
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {clear}"
    return client


def test_the_api_takes_the_change_record_and_shows_it_with_the_ticket_link(strict_environment):
    person = factories.engineer(strict_environment)
    body = {"service": strict_environment.service.name, "environment": "staging", "sha": factories.sha(),
            "ref": "main", "ticket": "PAY-7", "risk_level": "high", "impact": "All card payments.",
            "rollback_plan": "Revert the merge and redeploy."}
    response = _api(person).post("/api/v1/requests/", json.dumps(body), content_type="application/json")
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["ticket"] == "PAY-7" and data["risk_level"] == "high"
    assert data["ticket_url"] == "https://jira.example.com/browse/PAY-7"
    assert data["impact"] == "All card payments." and data["rollback_plan"] == "Revert the merge and redeploy."


@pytest.mark.parametrize(("change", "code"), [
    ({"ticket": ""}, "ticket_required"),
    ({"ticket": "PAY_7"}, "invalid_ticket"),
    ({"risk_level": "extreme"}, "invalid_risk_level"),
    ({"rollback_plan": ""}, "rollback_plan_required"),
    ({"ticket": 7}, "invalid"),
])
def test_the_api_refuses_an_incomplete_change_record_in_the_common_format(strict_environment, change, code):
    person = factories.engineer(strict_environment)
    body = {"service": strict_environment.service.name, "environment": "staging", "sha": factories.sha(),
            "ref": "main", "ticket": "PAY-7", "risk_level": "high", "impact": "All card payments.",
            "rollback_plan": "Revert the merge and redeploy.", **change}
    response = _api(person).post("/api/v1/requests/", json.dumps(body), content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == code
    assert not DeploymentRequest.objects.exists()


def test_the_new_request_form_asks_for_the_change_record_and_the_request_page_shows_it(client, strict_environment):
    person = factories.engineer(strict_environment)
    client.force_login(person)
    page = client.get("/requests/new/")
    assert b'id="change-record-fields"' in page.content and b'name="rollback_plan"' in page.content
    form = {"environment": strict_environment.pk, "sha": factories.sha(), "ref": "main"}
    refused = client.post("/requests/new/", form)
    assert refused.status_code == 400 and b"requires a ticket reference" in refused.content
    done = client.post("/requests/new/", {**form, "ticket": "OPS-9", "risk_level": "low",
                                          "impact": "Internal dashboards.", "rollback_plan": "Redeploy v1.2."})
    assert done.status_code == 302
    created = DeploymentRequest.objects.get()
    approver = factories.approver(strict_environment)
    client.force_login(approver)
    shown = client.get(f"/requests/{created.pk}/").content.decode()
    assert 'href="https://jira.example.com/browse/OPS-9"' in shown
    assert "Internal dashboards." in shown and "Redeploy v1.2." in shown


def test_a_policy_refuses_an_invalid_ticket_pattern_or_link_template(environment):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        services.update_policy(actor=None, approval_policy=environment.policy, ticket_pattern="([")
    with pytest.raises(ValidationError):
        services.update_policy(actor=None, approval_policy=environment.policy,
                               ticket_url_template="https://jira.example.com/browse/")
