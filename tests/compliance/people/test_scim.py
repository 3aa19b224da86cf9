"""SCIM 2.0 provisioning with requests shaped as RFC 7643/7644 show them: create, update and
deactivate people; group membership; a member added to a privileged role becomes a pending four-eyes
access change."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from compliance.models import AccessChange
from compliance.people import access_changes
from compliance.people.roles import Role
from tests import factories

pytestmark = pytest.mark.django_db

TOKEN = "scim-test-token-0123456789abcdef0123456789"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@pytest.fixture(autouse=True)
def scim_token(settings):
    settings.PORTAL_SCIM_TOKEN = TOKEN


def _call(client, method, path, body=None, token=TOKEN):
    kwargs = {"content_type": "application/scim+json", "HTTP_AUTHORIZATION": f"Bearer {token}"}
    if body is not None:
        kwargs["data"] = json.dumps(body)
    return getattr(client, method)(f"/scim/v2/{path}", **kwargs)


def _new_user(client, username="jdoe"):
    response = _call(client, "post", "Users", {
        "schemas": [USER_SCHEMA], "userName": username, "name": {"givenName": "Jane", "familyName": "Doe"},
        "emails": [{"value": f"{username}@example.com", "primary": True}], "active": True,
        "password": "sent-by-the-idp",
    })
    assert response.status_code == 201, response.content
    return response.json()


def test_requests_without_the_bearer_token_are_refused(client, settings):
    assert _call(client, "get", "Users", token="wrong").status_code == 401
    assert client.get("/scim/v2/Users").status_code == 401
    settings.PORTAL_SCIM_TOKEN = ""  # SCIM switched off: no token opens it
    response = _call(client, "get", "Users", token="")
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Bearer")
    assert not get_user_model().objects.filter(username="jdoe").exists()


def test_the_identity_provider_creates_updates_and_deactivates_a_person(client):
    created = _new_user(client)
    person = get_user_model().objects.get(username="jdoe")
    assert created["id"] == str(person.pk) and created["userName"] == "jdoe" and created["active"] is True
    assert created["emails"][0]["value"] == "jdoe@example.com" and "password" not in created
    assert not person.has_usable_password()  # the IdP's password is ignored: people sign in through it
    found = _call(client, "get", 'Users?filter=userName eq "jdoe"').json()
    assert found["totalResults"] == 1 and found["Resources"][0]["id"] == created["id"]
    assert "urn:ietf:params:scim:api:messages:2.0:ListResponse" in found["schemas"]
    response = _call(client, "put", f"Users/{person.pk}", {
        "schemas": [USER_SCHEMA], "userName": "jdoe", "name": {"givenName": "Jane", "familyName": "Roe"},
        "emails": [{"value": "jane.roe@example.com", "primary": True}], "active": True,
    })
    assert response.status_code == 200 and response.json()["name"]["familyName"] == "Roe"
    response = _call(client, "patch", f"Users/{person.pk}", {
        "schemas": [PATCH_SCHEMA], "Operations": [{"op": "replace", "value": {"active": False}}],
    })
    assert response.status_code == 200 and response.json()["active"] is False
    person.refresh_from_db()
    assert person.is_active is False and person.email == "jane.roe@example.com"
    _call(client, "patch", f"Users/{person.pk}", {
        "schemas": [PATCH_SCHEMA], "Operations": [{"op": "replace", "value": {"active": True}}]})
    assert _call(client, "delete", f"Users/{person.pk}").status_code == 204
    person.refresh_from_db()
    assert person.is_active is False  # deactivated, never deleted


def test_service_accounts_are_not_provisioned(client):
    bot = factories.UserFactory(username="ci-bot", is_service_account=True)
    listed = _call(client, "get", "Users").json()
    assert all(r["userName"] != "ci-bot" for r in listed["Resources"])
    assert _call(client, "delete", f"Users/{bot.pk}").status_code == 400
    bot.refresh_from_db()
    assert bot.is_active is True


def test_group_membership_and_a_privileged_role_through_four_eyes(client):
    ada = factories.UserFactory(username="ada", roles=[Role.ADMINISTRATOR], is_staff=True)
    person = get_user_model().objects.get(pk=int(_new_user(client)["id"]))
    response = _call(client, "post", "Groups", {"schemas": [GROUP_SCHEMA], "displayName": "payments-team"})
    assert response.status_code == 201
    team = Group.objects.get(name="payments-team")
    add = {"schemas": [PATCH_SCHEMA], "Operations": [
        {"op": "add", "path": "members", "value": [{"value": str(person.pk)}]}]}
    assert _call(client, "patch", f"Groups/{team.pk}", add).status_code == 200
    assert person.groups.filter(name="payments-team").exists()  # an ordinary group: at once
    approvers = Group.objects.get(name=str(Role.APPROVER))
    response = _call(client, "patch", f"Groups/{approvers.pk}", add)
    assert response.status_code == 200
    assert not person.groups.filter(pk=approvers.pk).exists()  # a privileged role: four eyes
    change = AccessChange.objects.get(subject=person, status="pending")
    assert change.requested_by is None and change.requested_via == "scim"
    assert _call(client, "patch", f"Groups/{approvers.pk}", add).status_code == 200  # the IdP retries: same one
    assert AccessChange.objects.filter(subject=person).count() == 1
    access_changes.approve_access_change(actor=ada, change=change, reason="IdP group Release Approvers")
    assert person.groups.filter(pk=approvers.pk).exists()
    members = _call(client, "get", f"Groups/{approvers.pk}").json()["members"]
    assert [m["value"] for m in members] == [str(person.pk)]
    remove = {"schemas": [PATCH_SCHEMA], "Operations": [
        {"op": "remove", "path": "members", "value": [{"value": str(person.pk)}]}]}
    assert _call(client, "patch", f"Groups/{approvers.pk}", remove).status_code == 200
    assert not person.groups.filter(pk=approvers.pk).exists()  # removals take effect at once
    assert _call(client, "delete", f"Groups/{approvers.pk}").status_code == 400  # roles are not deleted
    assert Group.objects.filter(pk=approvers.pk).exists()
