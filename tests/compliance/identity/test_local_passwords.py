"""Local passwords work for the demo and small teams, and ``PORTAL_LOCAL_PASSWORDS=0`` switches them off."""

from __future__ import annotations

import pytest
from axes.models import AccessFailureLog
from django.contrib.auth import authenticate
from django.test import RequestFactory
from django.urls import reverse

from tests import factories

pytestmark = pytest.mark.django_db
PASSWORD = "correct-horse-battery"


def test_the_sign_in_page_is_the_portals_and_takes_a_password(client):
    factories.UserFactory(username="pat")
    page = client.get(reverse("login"))
    assert page.status_code == 200 and b'id="id_username"' in page.content and b'name="login"' in page.content
    assert b"Deployment authorization" in page.content  # the portal's layout, not allauth's bare one
    response = client.post(reverse("login"), {"login": "pat", "password": PASSWORD})
    assert response.status_code == 302 and client.get("/").status_code == 200


def test_with_local_passwords_off_no_password_signs_anyone_in(client, settings):
    settings.PORTAL_LOCAL_PASSWORDS = False
    settings.SOCIALACCOUNT_ONLY = True
    factories.UserFactory(username="pat", is_staff=True, is_superuser=True)
    page = client.get(reverse("login"))
    assert b'name="password"' not in page.content
    assert client.post(reverse("login"), {"login": "pat", "password": PASSWORD}).status_code != 302
    assert client.get("/").status_code == 302
    # nor the admin's own login form, nor a shell
    admin_login = client.post(reverse("admin:login"), {"username": "pat", "password": PASSWORD})
    assert admin_login.status_code == 200 and client.get("/").status_code == 302
    assert authenticate(RequestFactory().post("/"), username="pat", password=PASSWORD) is None
    assert AccessFailureLog.objects.filter(username="pat").exists()  # the attempts are recorded
