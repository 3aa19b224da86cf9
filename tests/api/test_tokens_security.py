"""API tokens: nobody acts as someone else, scopes fail closed, the reports API honours tokens.

Security issue 11 (API tokens): an administrator could mint a token for an approver and approve
as them; an auditor could revoke anyone's token from the admin; a token scoped to a deleted
environment or service widened to everything; the reports API ignored token actions and scopes.
"""

from __future__ import annotations

import io
import json

import pytest
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.cache import caches
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from compliance.errors import RuleViolation
from compliance.people.identity import system_actor
from compliance.people.roles import Role
from deployments.api import tokens
from deployments.choices import Action, Tier, TokenAction
from deployments.models import ApiToken, Approval, DeploymentRequest, Refusal
from tests import factories

# --- people and helpers -------------------------------------------------------------------------


def bearer(clear: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {clear}")


def post_json(client: Client, url: str, data: dict):
    return client.post(url, data=json.dumps(data), content_type="application/json")


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content[:500]
    error = response.json()["error"]
    assert error["code"] == code, error
    assert {"code", "message", "details"} <= set(error)
    return error


def staff(username: str, role: Role, **kwargs):
    return factories.UserFactory(username=username, roles=[role], is_staff=True, **kwargs)


@pytest.fixture
def production(db):
    return factories.make_environment(name="production", tier=Tier.PRODUCTION)


@pytest.fixture
def administrator(db):
    return staff("adam-admin", Role.ADMINISTRATOR)


@pytest.fixture
def auditor(db):
    return staff("aude-auditor", Role.AUDITOR)


@pytest.fixture
def dave(environment):
    return factories.approver(environment, username="dave")


@pytest.fixture
def ci(environment, production):
    account = factories.UserFactory(username="ci-deployer", is_service_account=True)
    factories.grant(account, "request", environment)
    factories.grant(account, "request", production)
    return account


def legacy_token(*, user, created_by, **fields) -> tuple[ApiToken, str]:
    """A row as the old code wrote it (before the owner rule): built without the service on purpose."""
    prefix, secret = "abcdef012345", "legacy-secret-value-with-enough-entropy-0123456789"
    token = ApiToken.objects.create(user=user, name="legacy", prefix=prefix, secret_hash=tokens._hash(secret),
                                    created_by=created_by, **fields)
    return token, f"{tokens.TOKEN_PREFIX}{prefix}_{secret}"


# --- 2. nobody acts as someone else ------------------------------------------------------------


def test_an_administrator_cannot_add_a_token_for_an_approver_in_the_admin_and_approve_as_them(
    client, administrator, dave, submit
):
    request = submit()
    client.force_login(administrator)
    response = client.post("/admin/deployments/apitoken/add/", {"user": dave.pk, "name": "dave's laptop",
                                                                "actions_allowed": ["decide"]})
    assert response.status_code == 200
    page = response.content.decode()
    if 'id="api-token"' in page:  # the hole: the administrator now holds a token that acts as dave
        post_json(bearer(_clear_from(page)), f"/api/v1/requests/{request.pk}/approve/",
                  {"comment": "lgtm", "checklist": factories.full_checklist(request)})
    assert not Approval.objects.filter(request=request).exists()
    assert not ApiToken.objects.filter(user=dave).exists()
    assert "token_for_other_person" in page and "only dave may create a token for dave" in page
    refusal = Refusal.objects.get(code="token_for_other_person")
    assert refusal.actor == administrator and refusal.action == Action.CREATE_TOKEN


def test_the_service_refuses_a_token_for_another_person_and_records_who_tried(administrator, dave):
    with pytest.raises(RuleViolation) as refused:
        tokens.create_api_token(actor=administrator, user=dave, name="as dave", ip_address="127.0.0.1")
    assert refused.value.code == "token_for_other_person" and refused.value.status_code == 403
    assert "My API tokens" in refused.value.message
    assert not ApiToken.objects.filter(user=dave).exists()
    refusal = Refusal.objects.get(code="token_for_other_person")
    assert refusal.actor == administrator and refusal.action == Action.CREATE_TOKEN
    assert refusal.details == {"user": "dave"} and refusal.ip_address == "127.0.0.1"


def test_only_administrators_create_tokens_for_service_accounts(ci, requester, administrator):
    with pytest.raises(RuleViolation) as refused:
        tokens.create_api_token(actor=requester, user=ci, name="mine now")
    assert refused.value.code == "not_permitted"
    assert Refusal.objects.filter(code="not_permitted", actor=requester, action=Action.CREATE_TOKEN).exists()
    token, _ = tokens.create_api_token(actor=administrator, user=ci, name="pipeline")
    assert token.created_by == administrator
    with pytest.raises(RuleViolation) as refused:
        tokens.create_api_token(actor=administrator, user=system_actor(), name="system")
    assert refused.value.code == "token_for_system_account"


def test_the_admin_creates_service_account_tokens_and_the_evidence_names_the_administrator(
    client, administrator, ci, environment
):
    client.force_login(administrator)
    form = client.get("/admin/deployments/apitoken/add/").content.decode()
    assert "ci-deployer" in form and "adam-admin" not in form.split('name="user"', 1)[1].split("</select>", 1)[0]
    response = client.post("/admin/deployments/apitoken/add/", {"user": ci.pk, "name": "pipeline",
                                                                "services": [environment.service_id],
                                                                "actions_allowed": ["request", "execute"]})
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    token = ApiToken.objects.get(user=ci)
    assert token.created_by == administrator and token.scoped_services and not token.scoped_environments
    entry = LogEntry.objects.get(content_type=ContentType.objects.get_for_model(ApiToken), object_pk=str(token.pk),
                                 action=LogEntry.Action.CREATE)
    assert entry.actor == administrator


def test_a_persons_token_made_by_someone_else_never_authenticates(administrator, dave, submit):
    request = submit()
    _, clear = legacy_token(user=dave, created_by=administrator)
    response = post_json(bearer(clear), f"/api/v1/requests/{request.pk}/approve/",
                         {"comment": "ok", "checklist": factories.full_checklist(request)})
    assert_error(response, 401, "invalid_token")
    assert not Approval.objects.filter(request=request).exists()
    # a token with no recorded creator is no better
    ApiToken.objects.all().delete()
    _, clear = legacy_token(user=dave, created_by=None)
    assert_error(bearer(clear).get("/api/v1/me/"), 401, "invalid_token")


def test_a_service_accounts_token_made_by_an_administrator_authenticates(administrator, ci):
    _, clear = legacy_token(user=ci, created_by=administrator)
    assert bearer(clear).get("/api/v1/me/").json()["username"] == "ci-deployer"


def test_a_token_stops_working_when_its_service_account_becomes_a_person(administrator, ci):
    _, clear = tokens.create_api_token(actor=administrator, user=ci, name="pipeline")
    assert bearer(clear).get("/api/v1/me/").status_code == 200
    ci.is_service_account = False
    ci.save()
    assert_error(bearer(clear).get("/api/v1/me/"), 401, "invalid_token")


def test_the_command_refuses_a_person_and_points_to_my_api_tokens(dave):
    with pytest.raises(CommandError) as refused:
        call_command("create_api_token", "dave", stdout=io.StringIO(), stderr=io.StringIO())
    assert "My API tokens" in str(refused.value) and "token_for_other_person" in str(refused.value)
    assert not ApiToken.objects.filter(user=dave).exists()
    assert Refusal.objects.filter(code="token_for_other_person", action=Action.CREATE_TOKEN).exists()


def test_the_command_still_creates_service_account_tokens(db):
    out = io.StringIO()
    call_command("create_api_token", "new-bot", "--service-account", stdout=out, stderr=io.StringIO())
    token = tokens.token_for(out.getvalue().strip())
    assert token.user.username == "new-bot" and token.created_by == system_actor()


def test_an_auditor_cannot_run_the_revoke_action(client, auditor, dave):
    token, clear = tokens.create_api_token(actor=dave, user=dave, name="dave's laptop")
    auditor.user_permissions.add(*_view_permission("apitoken"))
    client.force_login(auditor)
    page = client.get("/admin/deployments/apitoken/")
    assert page.status_code == 200 and b"revoke_tokens" not in page.content
    response = client.post("/admin/deployments/apitoken/", {"action": "revoke_tokens", "_selected_action": [token.pk]})
    assert response.status_code in (200, 302, 403)
    assert ApiToken.objects.get(pk=token.pk).revoked_at is None
    assert tokens.token_for(clear) is not None


def test_an_administrator_revokes_a_leaked_token_in_the_admin(client, administrator, dave):
    token, clear = tokens.create_api_token(actor=dave, user=dave, name="leaked")
    client.force_login(administrator)
    client.post("/admin/deployments/apitoken/", {"action": "revoke_tokens", "_selected_action": [token.pk]})
    assert ApiToken.objects.get(pk=token.pk).revoked_at is not None and tokens.token_for(clear) is None


def test_nobody_revokes_someone_elses_token_through_the_service(requester, dave):
    token, clear = tokens.create_api_token(actor=dave, user=dave, name="dave's")
    with pytest.raises(RuleViolation) as refused:
        tokens.revoke_api_token(actor=requester, token=token)
    assert refused.value.code == "token_revoke_not_permitted"
    assert Refusal.objects.filter(code="token_revoke_not_permitted", actor=requester,
                                  action=Action.REVOKE_TOKEN).exists()
    assert tokens.token_for(clear) is not None


def _view_permission(model: str):
    from django.contrib.auth.models import Permission

    return list(Permission.objects.filter(content_type__app_label="deployments", codename=f"view_{model}"))


# --- My API tokens ------------------------------------------------------------------------------


def _clear_from(page: str) -> str:
    return page.split('id="api-token"', 1)[1].split(">", 1)[1].split("<", 1)[0]


def test_a_person_creates_a_token_and_sees_it_only_once(client, dave, environment, submit):
    client.force_login(dave)
    page = client.get("/tokens/")
    assert page.status_code == 200 and b"My API tokens" in page.content
    response = client.post("/tokens/new/", {"name": "release script", "actions": ["read", "decide"],
                                            "environments": [environment.pk], "expires": "30"})
    assert response.status_code == 200, response.content[:500]
    assert "no-store" in response["Cache-Control"]
    clear = _clear_from(response.content.decode())
    token = tokens.token_for(clear)
    assert token.user == dave and token.created_by == dave and token.scoped_environments
    assert sorted(token.actions) == ["decide", "read"]
    listing = client.get("/tokens/").content.decode()
    assert clear not in listing and token.prefix in listing and "release script" in listing
    assert "staging" in listing
    # the token is dave's own: it approves as dave
    request = submit()
    response = post_json(bearer(clear), f"/api/v1/requests/{request.pk}/approve/",
                         {"comment": "ok", "checklist": factories.full_checklist(request)})
    assert response.status_code == 200, response.content[:300]
    assert Approval.objects.get(request=request).approver == dave


def test_the_token_page_lists_only_my_own_tokens(client, dave, requester, administrator, ci):
    tokens.create_api_token(actor=dave, user=dave, name="dave-token")
    tokens.create_api_token(actor=requester, user=requester, name="rita-token")
    tokens.create_api_token(actor=administrator, user=ci, name="ci-token")
    client.force_login(requester)
    page = client.get("/tokens/").content.decode()
    assert "rita-token" in page and "dave-token" not in page and "ci-token" not in page


def test_creating_and_revoking_need_a_csrf_token(dave):
    token, clear = tokens.create_api_token(actor=dave, user=dave, name="mine")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(dave)
    assert browser.post("/tokens/new/", {"name": "x", "expires": "30"}).status_code == 403
    assert browser.post(f"/tokens/{token.pk}/revoke/").status_code == 403
    assert ApiToken.objects.filter(user=dave).count() == 1 and tokens.token_for(clear) is not None


def test_a_person_revokes_their_own_token_but_not_anothers(client, dave, requester):
    mine, my_clear = tokens.create_api_token(actor=requester, user=requester, name="mine")
    theirs, their_clear = tokens.create_api_token(actor=dave, user=dave, name="theirs")
    client.force_login(requester)
    assert client.post(f"/tokens/{theirs.pk}/revoke/").status_code == 404
    assert tokens.token_for(their_clear) is not None
    response = client.post(f"/tokens/{mine.pk}/revoke/", follow=True)
    assert b"is revoked" in response.content and tokens.token_for(my_clear) is None
    assert b"revoked" in client.get("/tokens/").content
    assert client.get(f"/tokens/{mine.pk}/revoke/").status_code == 405


def test_the_token_form_refuses_bad_input_and_environments_i_cannot_see(client, requester, production):
    client.force_login(requester)
    response = client.post("/tokens/new/", {"name": "", "expires": "30"})
    assert response.status_code == 400 and not ApiToken.objects.exists()
    response = client.post("/tokens/new/", {"name": "x", "environments": [production.pk], "expires": "30"})
    assert response.status_code == 400 and not ApiToken.objects.exists()
    response = client.post("/tokens/new/", {"name": "x", "actions": ["approve-everything"], "expires": "30"})
    assert response.status_code == 400 and not ApiToken.objects.exists()


def test_the_token_page_needs_a_signed_in_person_and_is_linked_from_the_navigation(client, requester):
    response = client.get("/tokens/")
    assert response.status_code == 302 and "/login" in response["Location"]
    assert client.post("/tokens/new/", {"name": "x", "expires": "30"}).status_code == 302
    assert not ApiToken.objects.exists()
    client.force_login(requester)
    assert b'href="/tokens/"' in client.get("/").content


def test_the_token_page_runs_the_same_queries_for_one_token_and_twenty(client, requester, environment):
    client.force_login(requester)
    tokens.create_api_token(actor=requester, user=requester, name="t0", environments=[environment])
    client.get("/tokens/")
    with CaptureQueriesContext(connection) as one:
        client.get("/tokens/")
    for i in range(1, 20):
        tokens.create_api_token(actor=requester, user=requester, name=f"t{i}", services=[environment.service],
                                environments=[environment])
    with CaptureQueriesContext(connection) as twenty:
        client.get("/tokens/")
    assert len(twenty.captured_queries) == len(one.captured_queries)


# --- 7. token scopes fail closed ----------------------------------------------------------------


@pytest.mark.parametrize("warm_cache", [False, True], ids=["cold-cache", "cache-expired-after-deletion"])
def test_a_token_scoped_to_a_deleted_environment_matches_nothing(administrator, ci, production, warm_cache):
    doomed = factories.make_environment(service=production.service, name="qa")
    factories.grant(ci, "request", doomed)
    _, clear = tokens.create_api_token(actor=administrator, user=ci, name="qa only", environments=[doomed])
    client = bearer(clear)
    if warm_cache:
        assert [e["name"] for e in client.get("/api/v1/environments/").json()["results"]] == ["qa"]
    doomed.delete()
    if warm_cache:
        caches["default"].clear()  # five minutes later, or another process
    assert client.get("/api/v1/environments/").json()["results"] == []
    assert client.get("/api/v1/services/").json()["results"] == []
    body = {"service": production.service.name, "environment": "production", "sha": factories.sha(), "ref": "main"}
    assert_error(post_json(client, "/api/v1/requests/", body), 404, "unknown_environment")
    assert not DeploymentRequest.objects.exists()
    assert Refusal.objects.filter(code="unknown_environment", actor=ci).exists()


def test_a_token_scoped_to_a_deleted_service_matches_nothing(administrator, ci, production):
    doomed = factories.ServiceFactory(name="retired-app")
    _, clear = tokens.create_api_token(actor=administrator, user=ci, name="retired", services=[doomed])
    client = bearer(clear)
    assert client.get("/api/v1/environments/").json()["results"] == []
    doomed.delete()
    caches["default"].clear()
    assert client.get("/api/v1/environments/").json()["results"] == []
    body = {"service": production.service.name, "environment": "production", "sha": factories.sha(), "ref": "main"}
    assert_error(post_json(client, "/api/v1/requests/", body), 404, "unknown_environment")
    assert not DeploymentRequest.objects.exists()


def test_a_cached_scope_holds_after_a_deletion(administrator, ci, environment, production):
    _, clear = tokens.create_api_token(actor=administrator, user=ci, name="staging", environments=[environment])
    client = bearer(clear)
    assert len(client.get("/api/v1/environments/").json()["results"]) == 1
    environment.delete()
    # the cache still holds the deleted id: it matches nothing, and never widens to production
    assert client.get("/api/v1/environments/").json()["results"] == []


def test_a_partly_deleted_scope_keeps_what_is_left(administrator, ci, environment, production):
    doomed = factories.make_environment(service=environment.service, name="qa")
    _, clear = tokens.create_api_token(actor=administrator, user=ci, name="two", environments=[doomed, environment])
    doomed.delete()
    names = [e["name"] for e in bearer(clear).get("/api/v1/environments/").json()["results"]]
    assert names == ["staging"]


def test_an_unscoped_token_still_reaches_everything_its_user_may(administrator, ci, environment, production):
    _, clear = tokens.create_api_token(actor=administrator, user=ci, name="all")
    assert len(bearer(clear).get("/api/v1/environments/").json()["results"]) == 2


def test_a_call_outside_the_tokens_actions_is_recorded(requester, environment):
    _, clear = tokens.create_api_token(actor=requester, user=requester, name="reader", actions=[TokenAction.READ])
    body = {"service": environment.service.name, "environment": "staging", "sha": factories.sha(), "ref": "main"}
    error = assert_error(post_json(bearer(clear), "/api/v1/requests/", body), 403, "token_scope")
    assert error["details"]["needed_action"] == "request"
    refusal = Refusal.objects.get(code="token_scope")
    assert refusal.actor == requester and refusal.action == Action.USE_TOKEN
    assert not DeploymentRequest.objects.exists()
