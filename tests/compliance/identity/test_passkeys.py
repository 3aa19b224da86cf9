"""WebAuthn passkeys through Chromium's virtual authenticator (CDP ``WebAuthn.addVirtualAuthenticator``):
an approver adds a security key, then signs in with it as their second factor."""

from __future__ import annotations

import pytest
from allauth.mfa.models import Authenticator

from compliance.people.roles import Role
from tests import factories
from tests.services_required import require_chromium
from tests.web.test_browser import CHROMIUM_ARGS, PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def page(monkeypatch):
    path = require_chromium()
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context()
        page = context.new_page()
        cdp = context.new_cdp_session(page)
        cdp.send("WebAuthn.enable")
        cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
            "protocol": "ctap2", "transport": "internal", "hasResidentKey": True, "hasUserVerification": True,
            "isUserVerified": True, "automaticPresenceSimulation": True,
        }})
        yield page
        browser.close()


def _password_sign_in(page, base, username):
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("form[action='/accounts/login/'] button[type=submit]")


def test_an_approver_adds_a_passkey_and_signs_in_with_it(page, live_server):
    factories.UserFactory(username="ann", roles=[Role.APPROVER])
    base = live_server.url
    _password_sign_in(page, base, "ann")
    page.wait_for_url(f"{base}/")
    page.goto(f"{base}/accounts/2fa/webauthn/add/")
    if "/reauthenticate/" in page.url:  # allauth asks for the password again before a factor is added
        page.fill("input[name=password]", PASSWORD)
        page.click("main button[type=submit]")
        page.wait_for_url("**/2fa/webauthn/add/**")
    page.fill("input[name=name]", "laptop")
    page.click("#mfa_webauthn_add")
    page.wait_for_url(lambda url: "/webauthn/add/" not in url, timeout=15000)
    assert Authenticator.objects.filter(user__username="ann", type=Authenticator.Type.WEBAUTHN).exists()

    page.context.clear_cookies()
    _password_sign_in(page, base, "ann")
    page.wait_for_url("**/accounts/2fa/authenticate/**")
    page.click("#mfa_webauthn_authenticate")
    page.wait_for_url(f"{base}/", timeout=15000)
    assert page.locator("text=Sign out ann").count() == 1
