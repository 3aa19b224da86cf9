"""MFA (allauth.mfa): TOTP with computed codes, recovery codes, and the enrolment requirement."""

from __future__ import annotations

import pyotp
import pytest
from allauth.mfa.models import Authenticator
from django.urls import reverse

from compliance.identity import evidence
from compliance.people.roles import Role
from tests import factories

pytestmark = pytest.mark.django_db
PASSWORD = "correct-horse-battery"


def sign_in(client, username):
    return client.post(reverse("login"), {"username": username, "password": PASSWORD})


def enrol_totp(client) -> pyotp.TOTP:
    """allauth asks for the password again before a second factor is added."""
    response = client.post(reverse("account_reauthenticate"), {"password": PASSWORD})
    assert response.status_code == 302, response.content[-500:]
    page = client.get(reverse("mfa_activate_totp"))
    assert page.status_code == 200
    totp = pyotp.TOTP(page.context["form"].secret)
    response = client.post(reverse("mfa_activate_totp"), {"code": totp.now()})
    assert response.status_code == 302, response.content[-800:]
    return totp


@pytest.fixture
def require_mfa(settings):
    settings.PORTAL_REQUIRE_MFA_FOR = [str(Role.ADMINISTRATOR), str(Role.APPROVER)]


def test_an_approver_must_enrol_a_second_factor_before_anything_else(client, require_mfa):
    factories.UserFactory(username="ann", roles=[Role.APPROVER])
    assert sign_in(client, "ann").status_code == 302
    response = client.get(reverse("deployments:queue"))
    assert response.status_code == 302 and response["Location"] == reverse("mfa_index")
    api = client.get("/api/v1/requests/")
    assert api.status_code == 403 and api.json()["error"]["code"] == "mfa_enrolment_required"
    enrol_totp(client)
    assert client.get(reverse("deployments:queue")).status_code == 200


def test_people_outside_the_required_roles_are_not_held(client, require_mfa):
    factories.UserFactory(username="eve", roles=[Role.ENGINEER])
    sign_in(client, "eve")
    assert client.get(reverse("deployments:my_requests")).status_code == 200


def test_sign_in_with_totp_asks_for_a_current_code_and_records_it(client):
    factories.UserFactory(username="ann", roles=[Role.APPROVER])
    sign_in(client, "ann")
    totp = enrol_totp(client)
    assert Authenticator.objects.filter(user__username="ann", type=Authenticator.Type.RECOVERY_CODES).exists()
    client.post(reverse("logout"))
    response = sign_in(client, "ann")
    assert response.status_code == 302 and response["Location"] == reverse("mfa_authenticate")
    assert client.get(reverse("deployments:queue")).status_code == 302  # not signed in yet
    wrong = client.post(reverse("mfa_authenticate"), {"code": "000000" if totp.now() != "000000" else "111111"})
    assert wrong.status_code == 200 and client.get("/").status_code == 302
    assert client.post(reverse("mfa_authenticate"), {"code": totp.now()}).status_code == 302
    assert client.get(reverse("deployments:queue")).status_code == 200
    proof = evidence.from_request(client.get("/").wsgi_request)
    assert proof.method == "mfa:totp" and proof.mfa_at is not None


def test_a_recovery_code_signs_in_once(client):
    factories.UserFactory(username="ann", roles=[Role.APPROVER])
    sign_in(client, "ann")
    enrol_totp(client)
    codes = Authenticator.objects.get(user__username="ann", type=Authenticator.Type.RECOVERY_CODES).wrap()
    code = codes.get_unused_codes()[0]
    client.post(reverse("logout"))
    sign_in(client, "ann")
    assert client.post(reverse("mfa_authenticate"), {"code": code}).status_code == 302
    assert client.get(reverse("deployments:queue")).status_code == 200
    client.post(reverse("logout"))
    sign_in(client, "ann")
    assert client.post(reverse("mfa_authenticate"), {"code": code}).status_code == 200  # used up
    assert client.get(reverse("deployments:queue")).status_code == 302
