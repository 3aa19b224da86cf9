"""Single sign-on against a real OpenID Connect provider on loopback (tests/compliance/identity/conftest.py)."""

from __future__ import annotations

import pytest
from allauth.socialaccount.models import SocialAccount
from axes.models import AccessFailureLog
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.urls import reverse

from compliance.models import AccessChange
from compliance.people import access_changes
from compliance.people.models import PrivilegeChange
from compliance.people.roles import Role, has_role
from tests import factories

pytestmark = pytest.mark.django_db

ROLES = {"okta-approvers": frozenset({str(Role.APPROVER)}), "okta-engineers": frozenset({str(Role.ENGINEER)})}


@pytest.fixture
def sso(settings, oidc_provider):
    settings.SOCIALACCOUNT_PROVIDERS = oidc_provider.portal_settings()
    settings.PORTAL_SSO_GROUP_ROLES = ROLES
    oidc_provider.set_accounts(
        alice={"email": "alice@example.com", "name": "Alice Approver", "groups": ["okta-approvers", "staff-all"]},
        gone={"email": "gone@example.com", "groups": ["okta-approvers"], "disabled": True},
    )
    return oidc_provider


def _start(client) -> str:
    response = client.post(reverse("openid_connect_login", kwargs={"provider_id": "sso"}))
    assert response.status_code == 302, response.content[:300]
    return response["Location"]


def _sign_in(client, provider, login: str):
    back = provider.authorize(_start(client), login)
    return client.get(back)


def _second_administrator_approves(person, role=Role.APPROVER) -> None:
    """A privileged role mapped by the IdP waits for an administrator (four eyes), then applies."""
    change = AccessChange.objects.get(subject=person, role=str(role), status="pending")
    assert change.requested_by is None and change.requested_via == "sso"
    ada = factories.UserFactory(username="ada", roles=[Role.ADMINISTRATOR], is_staff=True)
    access_changes.approve_access_change(actor=ada, change=change, reason="IdP group okta-approvers")


def test_a_person_the_provider_vouches_for_gets_an_account_with_the_mapped_roles(client, sso):
    response = _sign_in(client, sso, "alice")
    assert response.status_code == 302 and response["Location"] == "/"
    alice = get_user_model().objects.get(username="alice")
    assert alice.email == "alice@example.com" and alice.get_full_name() == "Alice Approver"
    # a privileged role is not granted by the sign-in: it waits for a second person (four eyes)
    assert not has_role(alice, Role.APPROVER) and not has_role(alice, Role.ENGINEER)
    assert not alice.is_staff and not alice.is_superuser and not alice.has_usable_password()
    assert SocialAccount.objects.get(user=alice).provider == "sso"
    assert client.get("/").status_code == 200  # signed in
    # no password to re-authenticate with: the fresh single sign-on lets them enrol a second factor
    assert client.get(reverse("mfa_activate_totp")).status_code == 200
    # and no way to give themselves a local password the IdP would not know of (set, reset, change)
    for url in (reverse("account_set_password"), reverse("account_reset_password")):
        client.post(url, {"password1": "a-new-local-pass-123", "password2": "a-new-local-pass-123",
                          "email": "alice@example.com"})
    client.post(reverse("password_change"), {"oldpassword": "", "password1": "a-new-local-pass-123",
                                             "password2": "a-new-local-pass-123"})
    alice.refresh_from_db()
    assert not alice.has_usable_password()
    # signing in again asks nothing new; an administrator's approval grants the role, a privilege change
    client.logout()
    assert _sign_in(client, sso, "alice").status_code == 302
    assert AccessChange.objects.filter(subject=alice).count() == 1
    _second_administrator_approves(alice)
    alice = get_user_model().objects.get(username="alice")
    assert has_role(alice, Role.APPROVER)
    assert PrivilegeChange.objects.filter(subject=alice, group=str(Role.APPROVER), kind="role_added").exists()


def test_roles_follow_the_provider_at_the_next_sign_in_and_unmapped_roles_stay(client, sso):
    _sign_in(client, sso, "alice")
    alice = get_user_model().objects.get(username="alice")
    alice.groups.add(Group.objects.get(name=str(Role.AUDITOR)))  # set by an administrator: not the IdP's to manage
    client.logout()
    sso.set_accounts(alice={"email": "alice@example.com", "groups": ["okta-engineers"]})
    assert _sign_in(client, sso, "alice").status_code == 302
    alice = get_user_model().objects.get(username="alice")
    assert set(alice.groups.values_list("name", flat=True)) == {str(Role.ENGINEER), str(Role.AUDITOR)}


def test_roles_from_the_provider_are_never_recorded_as_granted_by_the_person_themselves(client, sso):
    _sign_in(client, sso, "alice")
    _second_administrator_approves(get_user_model().objects.get(username="alice"))
    # alice is still signed in: the next sign-in's request starts as alice
    sso.set_accounts(alice={"email": "alice@example.com", "groups": ["okta-engineers"]})
    assert _sign_in(client, sso, "alice").status_code == 302
    changes = PrivilegeChange.objects.filter(subject__username="alice", group=str(Role.APPROVER))
    assert {"access_requested", "role_added", "role_removed"} <= {change.kind for change in changes}
    assert not changes.filter(actor__username="alice").exists()  # the IdP (and ada), never alice herself
    assert changes.get(kind="role_removed").actor is None


def test_the_provider_refusing_a_deactivated_person_is_refused_and_recorded(client, sso):
    response = _sign_in(client, sso, "gone")  # the provider answers access_denied
    assert response.status_code == 302 and response["Location"] == reverse("socialaccount_login_cancelled")
    assert not get_user_model().objects.filter(username="gone").exists()
    assert client.get("/").status_code == 302  # not signed in
    assert AccessFailureLog.objects.filter(username="sso:sso").exists()


def test_a_deactivated_portal_account_is_refused_at_its_next_sign_in(client, sso):
    _sign_in(client, sso, "alice")
    client.logout()
    get_user_model().objects.filter(username="alice").update(is_active=False)
    response = _sign_in(client, sso, "alice")
    assert response.status_code == 302 and response["Location"] == reverse("account_inactive")
    assert client.get("/").status_code == 302
    assert AccessFailureLog.objects.filter(username="alice").exists()


def test_a_callback_whose_state_is_not_this_sessions_is_refused(client, sso):
    back = sso.authorize(_start(client), "alice")
    forged = back.replace("state=", "state=forged")
    response = client.get(forged)
    assert response.status_code in (200, 400, 401)
    assert not get_user_model().objects.filter(username="alice").exists()
    assert AccessFailureLog.objects.filter(username="sso:sso").exists()


def test_a_code_issued_to_another_session_is_refused(client, sso, caplog):
    """What a nonce guards against (a code injected into someone else's sign-in): the code is bound to
    the session that asked for it (PKCE), so swapping it in fails at the provider's token endpoint."""
    from django.test import Client

    victim, attacker = client, Client()
    victim_back = sso.authorize(_start(victim), "alice")
    attacker_back = sso.authorize(_start(attacker), "alice")
    victim_state = victim_back.split("state=")[1].split("&")[0]
    attacker_code = attacker_back.split("code=")[1].split("&")[0]
    caplog.set_level("INFO", logger="compliance.identity.adapters")
    response = victim.get(f"{victim_back.split('?')[0]}?code={attacker_code}&state={victim_state}")
    assert "invalid_grant" in caplog.text
    assert response.status_code in (200, 400, 401)
    assert victim.get("/").status_code == 302
    assert AccessFailureLog.objects.filter(username="sso:sso").exists()


def test_an_expired_id_token_is_refused(client, settings, oidc_provider_with_slow_clock, caplog):
    provider = oidc_provider_with_slow_clock
    settings.SOCIALACCOUNT_PROVIDERS = provider.portal_settings()
    provider.set_accounts(alice={"email": "alice@example.com", "groups": []})
    caplog.set_level("INFO", logger="compliance.identity.adapters")
    response = _sign_in(client, provider, "alice")
    assert "ExpiredSignatureError" in caplog.text
    assert response.status_code in (200, 400, 401)
    assert not get_user_model().objects.filter(username="alice").exists()
    assert AccessFailureLog.objects.filter(username="sso:sso").exists()


@pytest.mark.parametrize("local", [{"username": "alice"}, {"username": "a.smith", "email": "alice@example.com"}])
def test_an_idp_account_matching_a_local_one_is_refused_not_linked_nor_renamed(client, sso, local):
    person = get_user_model().objects.create_user(password="x" * 16, **local)
    response = _sign_in(client, sso, "alice")
    assert response.status_code == 302 and response["Location"] == reverse("login")
    assert not SocialAccount.objects.exists() and get_user_model().objects.count() == 1
    assert client.get("/").status_code == 302  # signed in as nobody
    assert AccessFailureLog.objects.filter(username="alice").exists()
    assert person.groups.count() == 0


def test_with_linking_by_email_a_local_account_moves_to_single_sign_on(client, sso, settings):
    settings.PORTAL_SSO_LINK_BY_EMAIL = True
    settings.SOCIALACCOUNT_EMAIL_AUTHENTICATION = True
    settings.SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT = True
    person = get_user_model().objects.create_user(username="a.smith", email="alice@example.com", password="x" * 16)
    response = _sign_in(client, sso, "alice")
    assert response.status_code == 302 and response["Location"] == "/"
    assert SocialAccount.objects.get().user == person and get_user_model().objects.count() == 1
    _second_administrator_approves(person)
    assert has_role(person, Role.APPROVER)
