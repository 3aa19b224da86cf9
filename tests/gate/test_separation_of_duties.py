"""Separation of duties around the gate: who CI names, who wrote the change, who reported the checks,
and what a CI run deployed. Each test reproduces a hole an external review found."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from compliance.models import Violation, ViolationKind
from compliance.people.identity import system_actor
from deployments.api import tokens
from deployments.choices import ExecutionStatus, RequestStatus, Tier, UnverifiedIdentity
from deployments.gate import policy, services
from deployments.models import Execution, Refusal
from tests import factories

pytestmark = pytest.mark.django_db

ALL_PASS = {name: "success" for name in ("unit", "integration", "lint", "security-scan")}


def api(user) -> Client:
    client = Client()
    # A person makes their own token; a service account's comes from the portal's system account.
    actor = system_actor() if user.is_service_account else user
    _, clear = tokens.create_api_token(actor=actor, user=user, name="test")
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {clear}"
    return client


def post(client, url, data):
    return client.post(url, json.dumps(data), content_type="application/json")


@pytest.fixture
def production():
    return factories.make_environment(name="production", tier=Tier.PRODUCTION)


@pytest.fixture
def ci(production):
    bot = factories.UserFactory(username="ci-bot", is_service_account=True)
    factories.grant(bot, "request", production)
    return bot


@pytest.fixture
def carol(production):
    return factories.approver(production, username="carol", email="carol@example.com", first_name="Carol",
                              last_name="Approver", github_login="carol-gh")


@pytest.fixture
def dave(production):
    return factories.approver(production, username="dave")


@pytest.fixture
def erin(production):
    return factories.approver(production, username="erin")


def ci_request(client, environment, **fields):
    body = {"service": environment.service.name, "environment": environment.name, "sha": factories.sha(),
            "ref": "main", "checks": ALL_PASS, "change_authors": ["someone-else"], **fields}
    response = post(client, "/api/v1/requests/", body)
    assert response.status_code == 201, response.content
    return response.json()["id"]


def approve_over_api(user, request_id, production):
    from deployments.models import DeploymentRequest

    checklist = factories.full_checklist(DeploymentRequest.objects.get(pk=request_id))
    return post(api(user), f"/api/v1/requests/{request_id}/approve/", {"comment": "ok", "checklist": checklist})


# --- the requester CI names ---------------------------------------------------------------------


@pytest.mark.parametrize("login", ["carol@example.com", "CAROL@Example.com", "carol-gh", "Carol"])
def test_a_requester_named_by_e_mail_or_ci_login_is_recognised_and_cannot_approve(ci, carol, production, login):
    request_id = ci_request(api(ci), production, requester_login=login)

    response = approve_over_api(carol, request_id, production)

    assert response.status_code == 403 and response.json()["error"]["code"] == "self_approval"
    assert Refusal.objects.filter(actor=carol, code="self_approval").exists()


def test_a_requester_named_by_display_name_cannot_approve_their_own_deployment(ci, carol, production):
    request_id = ci_request(api(ci), production, requester_login="Carol  Approver")

    response = approve_over_api(carol, request_id, production)

    assert response.status_code == 403 and response.json()["error"]["code"] == "self_approval"


def test_an_unrecognised_requester_is_named_in_the_verdict_and_production_refuses_approval(ci, dave, production):
    request_id = ci_request(api(ci), production, requester_login="someone@contractor.example")

    detail = api(dave).get(f"/api/v1/requests/{request_id}/").json()
    response = approve_over_api(dave, request_id, production)

    assert "matches no portal person" in " ".join(detail["verdict"]["reasons"])
    assert response.status_code == 403 and response.json()["error"]["code"] == "identity_unverified"
    assert Refusal.objects.filter(actor=dave, code="identity_unverified").exists()


def test_a_request_naming_nobody_is_a_gap_too(ci, dave, production):
    request_id = ci_request(api(ci), production)

    assert approve_over_api(dave, request_id, production).json()["error"]["code"] == "identity_unverified"


def test_a_login_matching_two_people_identifies_nobody(ci, dave, production):
    factories.UserFactory(username="sam", email="sam@example.com")
    factories.UserFactory(username="sam2", github_login="sam")

    request_id = ci_request(api(ci), production, requester_login="sam")

    from deployments.models import DeploymentRequest

    assert DeploymentRequest.objects.get(pk=request_id).requester is None
    assert approve_over_api(dave, request_id, production).json()["error"]["code"] == "identity_unverified"


def test_where_the_policy_flags_an_unrecognised_requester_approval_is_allowed_and_flagged(ci, dave, erin, production):
    services.update_policy(actor=None, approval_policy=production.policy, unverified_identity=UnverifiedIdentity.FLAG)
    request_id = ci_request(api(ci), production, requester_login="someone@contractor.example")

    assert approve_over_api(dave, request_id, production).status_code == 200
    assert approve_over_api(erin, request_id, production).status_code == 200

    from deployments.models import DeploymentRequest

    request = DeploymentRequest.objects.get(pk=request_id)
    assert request.status == RequestStatus.APPROVED and request.flagged_for_review
    assert request.events.filter(data__identity_gaps__isnull=False).count() == 2


def test_production_refuses_unverified_identities_by_default_and_staging_flags():
    production = factories.make_environment(name="production", tier=Tier.PRODUCTION)
    staging = factories.make_environment(name="staging")
    assert production.policy.unverified_identity == UnverifiedIdentity.REFUSE and production.policy.trusted_checks_only
    assert staging.policy.unverified_identity == UnverifiedIdentity.FLAG and not staging.policy.trusted_checks_only


# --- change authors -----------------------------------------------------------------------------


def test_unknown_change_authors_refuse_approval_in_production(ci, carol, dave, production):
    request_id = ci_request(api(ci), production, requester_login="dave", change_authors=[])

    response = approve_over_api(carol, request_id, production)

    assert response.status_code == 403 and response.json()["error"]["code"] == "identity_unverified"
    assert "authors could not be determined" in response.json()["error"]["message"]


def test_a_change_author_named_by_e_mail_is_excluded(ci, carol, production):
    request_id = ci_request(api(ci), production, requester_login="erin", change_authors=["Carol@Example.com"])

    assert approve_over_api(carol, request_id, production).json()["error"]["code"] == "change_author"


# --- check provenance ---------------------------------------------------------------------------


def test_checks_a_person_reports_do_not_satisfy_production(production, carol, dave):
    alice = factories.engineer(production, username="alice")

    request = services.submit_request(actor=alice, environment=production, sha=factories.sha(), ref="main",
                                      checks=ALL_PASS, change_authors=["alice"])

    assert request.status == RequestStatus.PENDING_CHECKS
    assert request.check_provenance["unit"]["by"] == "alice" and not request.check_provenance["unit"]["service_account"]
    assert "Reported by a person, not by CI" in request.status_reason
    with pytest.raises(Exception) as refused:
        factories.approve(request, carol)
    assert refused.value.code == "checks_not_passed"


def test_checks_ci_reports_count_and_name_their_reporter(production, ci, carol, dave):
    alice = factories.engineer(production, username="alice")
    request = services.submit_request(actor=alice, environment=production, sha=factories.sha(), ref="main",
                                      checks=ALL_PASS, change_authors=["alice"])

    request = services.record_checks(actor=ci, request=request, checks=ALL_PASS)

    assert request.status == RequestStatus.AWAITING_APPROVAL
    assert request.check_provenance["security-scan"] == {**request.check_provenance["security-scan"],
                                                         "by": "ci-bot", "service_account": True}


def test_a_person_reporting_a_failure_still_blocks(production):
    alice = factories.engineer(production, username="alice")
    request = services.submit_request(actor=alice, environment=production, sha=factories.sha(), ref="main",
                                      checks={**ALL_PASS, "unit": "failure"}, change_authors=["alice"])
    assert request.status == RequestStatus.BLOCKED


# --- executions ---------------------------------------------------------------------------------


@pytest.fixture
def approved(ci, carol, dave, erin, production):
    request_id = ci_request(api(ci), production, requester_login="erin")
    for person in (carol, dave):
        assert approve_over_api(person, request_id, production).status_code == 200
    from deployments.models import DeploymentRequest

    return DeploymentRequest.objects.get(pk=request_id)


def test_a_ci_run_reported_with_the_wrong_sha_cannot_be_rewritten(ci, approved, production):
    client = api(ci)
    url = f"/api/v1/requests/{approved.pk}/executions/"
    wrong = factories.sha("wrong")
    first = post(client, url, {"sha": wrong, "status": "in_progress", "external_id": "run-7"})
    assert first.status_code == 201 and not first.json()["authorized"]

    again = post(client, url, {"sha": approved.sha, "status": "success", "external_id": "run-7"})

    assert again.status_code == 409 and again.json()["error"]["code"] == "execution_conflict"
    execution = Execution.objects.get(external_id="run-7")
    assert execution.sha == wrong and not execution.authorized
    assert "differs from the approved sha" in execution.flag_reason
    assert execution.status == ExecutionStatus.IN_PROGRESS
    assert Refusal.objects.filter(code="execution_conflict", actor=ci).exists()
    conflict = Violation.objects.get(kind=ViolationKind.EXECUTION_CONFLICT)
    assert conflict.evidence["conflicting_report"]["sha"] == approved.sha
    approved.refresh_from_db()
    assert approved.status == RequestStatus.APPROVED  # nothing moved it on


def test_a_flagged_execution_stays_flagged_whatever_is_reported_later(ci, approved, production):
    execution = services.report_execution(actor=ci, environment=production, sha=approved.sha,
                                          status=ExecutionStatus.IN_PROGRESS, external_id="run-8",
                                          request=None)
    # Linked to the approved request by sha: authorized. Now a run reported before any approval:
    unapproved_sha = factories.sha("unapproved")
    early = services.report_execution(actor=ci, environment=production, sha=unapproved_sha,
                                      status=ExecutionStatus.IN_PROGRESS, external_id="run-9")
    assert execution.authorized and not early.authorized

    later = services.report_execution(actor=ci, environment=production, sha=unapproved_sha,
                                      status=ExecutionStatus.SUCCESS, external_id="run-9", request=approved)

    assert later.pk == early.pk and not later.authorized and later.flag_reason == early.flag_reason
    assert later.request_id is None


def test_the_policy_rules_name_every_gap():
    rules = policy.PolicyRules(exclude_change_authors=True)
    facts = policy.RequestFacts(rules=rules, requester=None, requester_login="x@y", change_authors_known=False)
    assert len(policy.identity_gaps(facts)) == 2
    assert policy.eligibility_refusal(policy.Person(1, frozenset({"z"})), facts).code == "identity_unverified"
    # Rejecting is never refused for a gap: it only makes things safer.
    assert policy.eligibility_refusal(policy.Person(1, frozenset({"z"})), facts, decision="reject") is None
    assert policy.eligibility_refusal(policy.Person(1, frozenset({"x@y"})), facts, decision="reject").code == (
        "self_approval"
    )
