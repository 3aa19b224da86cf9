"""Single sign-on with SAML 2.0 against pysaml2's identity provider (tests/compliance/identity/saml_idp.py)."""

from __future__ import annotations

import shutil
from urllib.parse import urlsplit

import pytest
from axes.models import AccessFailureLog
from django.contrib.auth import get_user_model

from compliance.models import AccessChange
from compliance.people.roles import Role, has_role
from tests.compliance.identity.saml_idp import SamlIdentityProvider
from tests.services_required import missing

pytestmark = pytest.mark.django_db


@pytest.fixture
def client():
    """python3-saml accepts only real host names (not "testserver") in the portal's own SAML URLs."""
    from django.test import Client

    return Client(HTTP_HOST="127.0.0.1")


@pytest.fixture
def saml_idp(client, settings, tmp_path):
    if shutil.which("xmlsec1") is None:
        missing("needs Debian's xmlsec1 for the SAML identity provider")
    settings.SOCIALACCOUNT_PROVIDERS = {"saml": {"APPS": [{"provider_id": "saml", "name": "-", "client_id": "sso",
                                                          "settings": {"idp": {"entity_id": "x", "sso_url": "http://127.0.0.1/",
                                                                               "x509cert": ""}}}]}}
    metadata = client.get("/accounts/saml/sso/metadata/")
    assert metadata.status_code == 200, metadata.content[:300]
    idp = SamlIdentityProvider(tmp_path, metadata.content.decode())
    settings.SOCIALACCOUNT_PROVIDERS = idp.portal_settings()
    settings.PORTAL_SSO_GROUP_ROLES = {"deploy-approvers": frozenset({str(Role.APPROVER)})}
    return idp


def _deliver(client, answer):
    """Post the IdP's answer to the assertion consumer service and follow it to its finishing step."""
    response = client.post(urlsplit(answer["url"]).path, answer["fields"])
    for _ in range(3):
        if response.status_code != 302 or not response["Location"].startswith("/accounts/saml/"):
            break
        response = client.get(response["Location"])
    return response


def _sign_in(client, idp, user, attributes):
    response = client.post("/accounts/saml/sso/login/?process=login")
    assert response.status_code == 302, response.content[:500]
    return _deliver(client, idp.answer(response["Location"], user=user, attributes=attributes))


def test_a_signed_assertion_signs_in_with_a_new_account_and_mapped_roles(client, saml_idp):
    response = _sign_in(client, saml_idp, "bob", {"uid": ["bob"], "email": ["bob@example.com"],
                                                  "groups": ["deploy-approvers", "everyone"]})
    assert response.status_code == 302 and response["Location"] == "/", response.content[:500]
    bob = get_user_model().objects.get(username="bob")
    assert not bob.is_staff and not bob.is_superuser
    # a privileged role mapped by the IdP is a pending access change for an administrator (four eyes)
    assert not has_role(bob, Role.APPROVER)
    change = AccessChange.objects.get(subject=bob, role=str(Role.APPROVER), status="pending")
    assert change.requested_via == "sso"
    assert client.get("/").status_code == 200


def test_an_assertion_signed_by_another_key_is_refused(client, saml_idp, tmp_path):
    metadata = client.get("/accounts/saml/sso/metadata/").content.decode()
    (tmp_path / "impostor").mkdir()
    impostor = SamlIdentityProvider(tmp_path / "impostor", metadata)
    response = client.post("/accounts/saml/sso/login/?process=login")
    answer = impostor.answer(response["Location"], user="bob", attributes={"uid": ["bob"], "groups": []})
    refused = _deliver(client, answer)
    assert refused.status_code == 401 and b"Login Failure" in refused.content
    assert not get_user_model().objects.filter(username="bob").exists()
    assert client.get("/").status_code == 302
    assert AccessFailureLog.objects.filter(username="sso:saml").exists()  # the refusal is recorded


def test_a_deactivated_account_is_refused_at_its_next_saml_sign_in(client, saml_idp):
    attributes = {"uid": ["bob"], "email": ["bob@example.com"], "groups": []}
    _sign_in(client, saml_idp, "bob", attributes)
    client.post("/accounts/logout/")
    get_user_model().objects.filter(username="bob").update(is_active=False)
    response = _sign_in(client, saml_idp, "bob", attributes)
    assert response.status_code == 302 and response["Location"] == "/accounts/inactive/"
    assert client.get("/").status_code == 302
    assert AccessFailureLog.objects.filter(username="bob").exists()
