"""The API's behaviour beyond permissions: idempotency, bad input, tokens, audit actor, query counts."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from compliance.people.roles import Role
from deployments.api import tokens
from deployments.choices import RequestStatus, TokenAction
from deployments.gate import services
from deployments.models import ApiToken, DeploymentRequest, Execution, Refusal
from tests import factories

pytestmark = pytest.mark.django_db


def api(user=None, **token_kwargs) -> Client:
    client = Client()
    if user is not None:
        _, clear = tokens.create_api_token(actor=user, user=user, name="test", **token_kwargs)
        client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {clear}"
    return client


def post(client, url, data, **headers):
    body = data if isinstance(data, str | bytes) else json.dumps(data)
    return client.post(url, body, content_type="application/json", **headers)


@pytest.fixture
def body(environment):
    return {"service": environment.service.name, "environment": environment.name, "sha": factories.sha(),
            "ref": "main"}


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code, error
    assert error["message"] and isinstance(error["details"], dict)
    return error


# --- idempotency ------------------------------------------------------------------------------


def test_a_retry_with_the_same_idempotency_key_gets_the_original_response(requester, body):
    client = api(requester)
    first = post(client, "/api/v1/requests/", body, HTTP_IDEMPOTENCY_KEY="run-42-attempt")
    assert first.status_code == 201
    again = post(client, "/api/v1/requests/", body, HTTP_IDEMPOTENCY_KEY="run-42-attempt")
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert DeploymentRequest.objects.count() == 1


def test_the_same_idempotency_key_with_another_body_is_refused(requester, body):
    client = api(requester)
    assert post(client, "/api/v1/requests/", body, HTTP_IDEMPOTENCY_KEY="k1").status_code == 201
    other = {**body, "sha": factories.sha()}
    assert_error(post(client, "/api/v1/requests/", other, HTTP_IDEMPOTENCY_KEY="k1"), 422, "idempotency_key_reused")
    assert DeploymentRequest.objects.count() == 1


def test_idempotency_keys_belong_to_their_user_and_refusals_are_not_remembered(requester, environment, body):
    colleague = factories.engineer(environment, username="colleague")
    assert post(api(requester), "/api/v1/requests/", body, HTTP_IDEMPOTENCY_KEY="shared").status_code == 201
    assert post(api(colleague), "/api/v1/requests/", body, HTTP_IDEMPOTENCY_KEY="shared").status_code == 201
    client = api(requester)
    bad = {**body, "ref": "main", "environment": "nowhere"}
    assert_error(post(client, "/api/v1/requests/", bad, HTTP_IDEMPOTENCY_KEY="retry-me"), 404, "unknown_environment")
    assert post(client, "/api/v1/requests/", body | {"sha": factories.sha()},
                HTTP_IDEMPOTENCY_KEY="retry-me").status_code == 201


def test_without_a_key_each_call_creates_a_request(requester, body):
    client = api(requester)
    assert post(client, "/api/v1/requests/", body).status_code == 201
    assert post(client, "/api/v1/requests/", body).status_code == 201
    assert DeploymentRequest.objects.count() == 2


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ("{not json", 400, "malformed_json"),
        ("[1, 2]", 400, "invalid"),
        ({"sha": 123}, 400, "invalid"),
        ({"is_emergency": "yes"}, 400, "invalid"),
        ({"checks": {"unit": "green"}}, 400, "invalid"),
        ({"change_authors": "alice"}, 400, "invalid"),
        ({"admin": True}, 400, "unknown_field"),
        ({"sha": "not-a-sha"}, 400, "invalid_sha"),
    ],
)
def test_bad_input_is_refused_in_the_common_format_without_a_change(requester, body, payload, status, code):
    data = payload if isinstance(payload, str) else {**body, **payload}
    assert_error(post(api(requester), "/api/v1/requests/", data), status, code)
    assert DeploymentRequest.objects.count() == 0


def test_an_oversize_body_is_413(requester, body, settings):
    settings.PORTAL_MAX_BODY_BYTES = 300
    data = {**body, "title": "x" * 290}
    assert_error(post(api(requester), "/api/v1/requests/", data), 413, "payload_too_large")
    assert DeploymentRequest.objects.count() == 0


def test_a_non_json_body_is_415(requester):
    response = api(requester).post("/api/v1/requests/", "sha=1", content_type="application/x-www-form-urlencoded")
    assert_error(response, 415, "unsupported_media_type")


def test_unknown_ids_and_out_of_scope_objects_are_the_same_404(submit, environment):
    request = submit()
    outsider = api(factories.engineer(factories.make_environment(name="elsewhere"), username="elsewhere"))
    hidden = outsider.get(f"/api/v1/requests/{request.pk}/")
    missing = outsider.get("/api/v1/requests/999999/")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == missing.json()
    assert_error(post(outsider, f"/api/v1/requests/{request.pk}/cancel/", {}), 404, "not_found")
    assert_error(outsider.get("/api/v1/requests/abc/"), 404, "not_found")
    assert DeploymentRequest.objects.get(pk=request.pk).status == request.status


def test_expired_revoked_malformed_and_unknown_tokens_are_401(requester):
    token, clear = tokens.create_api_token(actor=requester, user=requester, name="ci")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {clear}")
    assert client.get("/api/v1/me/").status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert_error(client.get("/api/v1/me/"), 401, "invalid_token")
    ApiToken.objects.filter(pk=token.pk).update(expires_at=None)
    tokens.revoke_api_token(actor=requester, token=token)
    assert_error(client.get("/api/v1/me/"), 401, "invalid_token")
    for header in (f"Bearer {clear[:-2]}xx", "Bearer dap_short_x", "Bearer", "Bearer a b"):
        assert_error(Client(HTTP_AUTHORIZATION=header).get("/api/v1/me/"), 401, "invalid_token")
    requester.is_active = False
    requester.save()
    _, other = tokens.create_api_token(actor=requester, user=requester, name="inactive")
    assert_error(Client(HTTP_AUTHORIZATION=f"Bearer {other}").get("/api/v1/me/"), 401, "invalid_token")


def test_an_action_outside_the_tokens_scope_is_403(requester, body, submit):
    reader = api(requester, actions=[TokenAction.READ])
    assert_error(post(reader, "/api/v1/requests/", body), 403, "token_scope")
    request = submit()
    assert_error(post(reader, f"/api/v1/requests/{request.pk}/cancel/", {}), 403, "token_scope")
    assert DeploymentRequest.objects.get(pk=request.pk).status == RequestStatus.AWAITING_APPROVAL


def test_an_environment_outside_the_tokens_scope_is_unknown(requester, environment, body):
    other = factories.make_environment(name="other")
    factories.grant(requester, "request", other)
    client = api(requester, environments=[other])
    error = assert_error(post(client, "/api/v1/requests/", body), 404, "unknown_environment")
    assert environment.service.name in error["message"]
    assert Refusal.objects.filter(code="unknown_environment", actor=requester).exists()


def test_unknown_api_urls_answer_in_the_common_format(requester):
    assert_error(api(requester).get("/api/v1/nothing-here/"), 404, "not_found")
    assert_error(api(requester).delete("/api/v1/requests/"), 405, "method_not_allowed")


# --- rules through the API ------------------------------------------------------------------


def test_a_policy_refusal_carries_its_code_message_and_details(submit, approvers):
    request = submit()
    error = assert_error(post(api(approvers[0]), f"/api/v1/requests/{request.pk}/approve/", {"comment": "ok"}),
                         400, "checklist_incomplete")
    assert "impact checklist" in error["message"] and error["details"]["unanswered"]
    assert Refusal.objects.filter(code="checklist_incomplete").count() == 1


def test_self_approval_is_refused_with_the_rule_named(environment):
    both = factories.UserFactory(username="both-hats", roles=[Role.ENGINEER, Role.APPROVER])
    factories.grant(both, "request", environment)
    factories.grant(both, "approve", environment)
    client = api(both)
    created = post(client, "/api/v1/requests/", {"service": environment.service.name, "environment": "staging",
                                                 "sha": factories.sha(), "ref": "main"}).json()
    checklist = {item: True for item in created["policy"]["impact_checklist"]}
    error = assert_error(post(client, f"/api/v1/requests/{created['id']}/approve/", {"checklist": checklist}),
                         403, "self_approval")
    assert "request" in error["message"].lower()


def test_ci_polls_the_decision_and_reports_the_execution(environment, approvers):
    ci = factories.UserFactory(username="ci-bot", is_service_account=True)
    factories.grant(ci, "request", environment)
    client = api(ci, services=[environment.service], actions=["read", "request", "execute"])
    created = post(client, "/api/v1/requests/", {
        "service": environment.service.name, "environment": "staging", "sha": factories.sha(), "ref": "main",
        "requester_login": "rita", "source": "cli", "external_ids": {"run": "42"},
    })
    assert created.status_code == 201, created.content
    data = created.json()
    assert data["decision"] is None and data["verdict"]["outcome"] == "awaiting_approval"
    assert data["requester"] is None and data["requester_login"] == "rita" and data["source"] == "cli"
    request = DeploymentRequest.objects.get(pk=data["id"])
    factories.approve(request, approvers[0])
    polled = client.get(f"/api/v1/requests/{request.pk}/").json()
    assert polled["decision"] == "approved" and polled["decisions"][0]["approver"] == approvers[0].username
    started = post(client, f"/api/v1/requests/{request.pk}/executions/", {"status": "started", "external_id": "7"})
    assert started.status_code == 201 and started.json()["authorized"] is True
    done = post(client, f"/api/v1/requests/{request.pk}/executions/",
                {"status": "succeeded", "external_id": "7", "url": "https://ci.example.com/run/7"})
    assert done.status_code == 201
    assert DeploymentRequest.objects.get(pk=request.pk).status == RequestStatus.DEPLOYED
    assert Execution.objects.count() == 1


def test_a_service_account_names_the_person_it_acts_for(environment, requester):
    ci = factories.UserFactory(username="ci-bot", is_service_account=True)
    factories.grant(ci, "request", environment)
    response = post(api(ci), "/api/v1/requests/", {"service": environment.service.name, "environment": "staging",
                                                   "sha": factories.sha(), "ref": "main", "requester_login": "RITA"})
    assert response.json()["requester"] == "rita"


def test_checks_recorded_by_ci_move_the_request(environment, requester):
    environment.policy.required_checks = ["unit"]
    environment.policy.save()
    client = api(requester)
    created = post(client, "/api/v1/requests/", {"service": environment.service.name, "environment": "staging",
                                                 "sha": factories.sha(), "ref": "main"}).json()
    assert created["status"] == "pending_checks"
    response = post(client, f"/api/v1/requests/{created['id']}/checks/", {"checks": {"unit": "success"}})
    assert response.json()["status"] == "awaiting_approval"


def test_policy_changes_through_the_api_bump_the_version(environment):
    admin = factories.UserFactory(username="root-admin", roles=[Role.ADMINISTRATOR])
    client = api(admin)
    response = client.patch(f"/api/v1/policies/{environment.policy.pk}/",
                            json.dumps({"required_checks": ["unit"], "request_ttl": "2 00:00:00"}),
                            content_type="application/json")
    assert response.status_code == 200, response.content
    assert response.json()["version"] == 2 and response.json()["required_checks"] == ["unit"]
    bad = client.patch(f"/api/v1/policies/{environment.policy.pk}/", json.dumps({"required_approvals": 0}),
                       content_type="application/json")
    assert_error(bad, 400, "invalid")
    duplicate = post(client, "/api/v1/environments/", {"service": environment.service.name, "name": "staging"})
    assert_error(duplicate, 409, "environment_exists")


# --- tokens and audit -------------------------------------------------------------------------


def test_tokens_are_stored_hashed_and_usage_is_recorded(requester):
    token, clear = tokens.create_api_token(actor=requester, user=requester, name="ci")
    secret = clear.split("_", 2)[2]
    stored = ApiToken.objects.filter(pk=token.pk).values().get()
    assert secret not in json.dumps(stored, default=str)
    assert token.last_used_at is None
    Client(HTTP_AUTHORIZATION=f"Bearer {clear}").get("/api/v1/me/")
    assert ApiToken.objects.get(pk=token.pk).last_used_at is not None
    for entry in LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(ApiToken)):
        assert token.secret_hash not in json.dumps(entry.changes)


def test_writes_through_a_token_are_audited_with_the_tokens_user_as_actor(requester, body):
    response = post(api(requester), "/api/v1/requests/", body)
    entry = LogEntry.objects.get(content_type=ContentType.objects.get_for_model(DeploymentRequest),
                                 object_pk=str(response.json()["id"]), action=LogEntry.Action.CREATE)
    assert entry.actor == requester


def test_create_api_token_command_prints_a_scoped_token_once(environment):
    ci = factories.UserFactory(username="deploy-bot", is_service_account=True)
    factories.grant(ci, "request", environment)
    out = io.StringIO()
    call_command("create_api_token", "deploy-bot", "--service", environment.service.name, "--action", "request",
                 "--action", "read", "--expires", "30d", stdout=out, stderr=io.StringIO())
    clear = out.getvalue().strip()
    token = tokens.token_for(clear)
    assert token.user == ci and sorted(token.actions) == ["read", "request"]
    assert token.expires_at > timezone.now() + timedelta(days=29)
    assert list(token.services.all()) == [environment.service]
    assert Client(HTTP_AUTHORIZATION=f"Bearer {clear}").get("/api/v1/me/").json()["username"] == "deploy-bot"


def test_create_api_token_command_refuses_unknown_things(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("create_api_token", "nobody", stdout=io.StringIO())
    factories.UserFactory(username="someone")
    with pytest.raises(CommandError):
        call_command("create_api_token", "someone", "--service", "nope", stdout=io.StringIO())
    with pytest.raises(CommandError):
        call_command("create_api_token", "someone", "--expires", "soon", stdout=io.StringIO())


def test_the_admin_shows_a_new_token_once_and_keeps_only_its_hash(client):
    admin = factories.UserFactory(username="boss", roles=[Role.ADMINISTRATOR], is_staff=True, is_superuser=True)
    owner = factories.UserFactory(username="token-owner", is_service_account=True)
    client.force_login(admin)
    response = client.post("/admin/deployments/apitoken/add/", {"user": owner.pk, "name": "laptop",
                                                                "actions_allowed": ["read"]})
    assert response.status_code == 200, response.content[:500]
    token = ApiToken.objects.get(user=owner)
    page = response.content.decode()
    clear = page.split('id="api-token"', 1)[1].split(">", 1)[1].split("<", 1)[0]
    assert tokens.token_for(clear) == token and token.actions == ["read"]
    assert clear not in client.get(f"/admin/deployments/apitoken/{token.pk}/change/").content.decode()


# --- performance --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/requests/", "/api/v1/services/", "/api/v1/environments/",
                                  "/api/v1/policies/"])
def test_list_endpoints_use_a_constant_number_of_queries(path, environment, requester, submit):
    client = api(requester)
    submit()
    client.get(path)  # the first call records the token's last use

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(path).status_code == 200
        return len(queries)

    few = count()
    for i in range(6):
        env = factories.make_environment(name=f"extra-{i}")
        factories.grant(requester, "request", env)
        services.submit_request(actor=requester, environment=env, sha=factories.sha(), ref="main")
        submit()
    assert count() == few


def test_the_schema_and_the_local_swagger_ui_are_served(client):
    schema = client.get("/api/schema/?format=json")
    assert schema.status_code == 200 and "/api/v1/requests/" in schema.json()["paths"]
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"drf_spectacular_sidecar" in docs.content


def test_the_one_object_visibility_check_agrees_with_the_list_rule(environment, submit, requester, approvers):
    """permissions.can_view_request is the single-row form of visible_requests: same answers."""
    from deployments.gate import permissions

    own = submit()
    other_env = factories.make_environment(name="other")
    other = services.submit_request(actor=factories.engineer(other_env, username="other-eng"), environment=other_env,
                                    sha=factories.sha(), ref="main")
    group_member = factories.UserFactory(username="via-group")
    from django.contrib.auth.models import Group

    group = Group.objects.create(name="payments approvers")
    group_member.groups.add(group)
    factories.grant(group, "approve", other_env)
    people = [requester, approvers[0], group_member, factories.UserFactory(username="nobody"),
              factories.UserFactory(username="auditor-x", roles=[Role.AUDITOR])]
    for person in people:
        visible = set(permissions.visible_requests(person).values_list("pk", flat=True))
        for request in (own, other):
            annotated = permissions.with_direct_grant(DeploymentRequest.objects.filter(pk=request.pk), person).get()
            assert permissions.can_view_request(person, annotated) == (request.pk in visible), person
            assert permissions.can_view_request(person, request) == (request.pk in visible), person


def test_the_status_endpoint_is_small_and_cheap(requester, submit):
    client = api(requester)
    request = submit()
    client.get(f"/api/v1/requests/{request.pk}/status/")
    with CaptureQueriesContext(connection) as queries:
        data = client.get(f"/api/v1/requests/{request.pk}/status/").json()
    assert set(data) == {"id", "url", "status", "decision", "status_reason", "decided_at", "approval_expires_at",
                         "updated_at", "superseded_by", "superseded_by_url"}
    assert data["status"] == "awaiting_approval" and data["decision"] is None
    assert len(queries) <= 4


def test_model_validation_errors_from_services_are_400_in_the_common_format():
    from django.core.exceptions import ValidationError

    from deployments.api.errors import api_exception_handler

    response = api_exception_handler(ValidationError({"required_checks": ["Bad."]}), {})
    assert response.status_code == 400
    assert response.data["error"]["code"] == "invalid" and response.data["error"]["details"]["required_checks"]
    response = api_exception_handler(RuntimeError("boom"), {})
    assert response.status_code == 500 and response.data["error"]["code"] == "server_error"
