"""``manage.py check_github`` reports what is wrong with the GitHub set-up."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.integrations.github.conftest import REPOSITORY
from tests.integrations.github.fake import APP_ID

pytestmark = pytest.mark.django_db


def run():
    out = StringIO()
    try:
        call_command("check_github", stdout=out)
    except CommandError as exc:
        return out.getvalue(), str(exc)
    return out.getvalue(), ""


def test_a_correct_set_up_passes(github, production):
    github.environments[REPOSITORY] = {"production": {"can_admins_bypass": False, "app_ids": [APP_ID]}}
    output, error = run()
    assert error == "", output
    assert "the App is its deployment protection rule" in output
    assert "GitHub is set up correctly" in output


def test_missing_protection_rule_and_admin_bypass_are_reported(github, production):
    github.environments[REPOSITORY] = {"production": {"can_admins_bypass": True, "app_ids": []}}
    output, error = run()
    assert "2 problem(s)" in error
    assert "enable the App as a custom deployment protection rule" in output
    assert "bypass" in output


def test_a_missing_environment_and_a_missing_installation_are_reported(github, production):
    output, error = run()
    assert "GitHub has no environment of this name" in output
    github.installations.clear()
    output, error = run()
    assert "not installed" in output and error


def test_missing_credentials_are_reported(settings, db):
    settings.GITHUB_APP_ID = ""
    settings.GITHUB_WEBHOOK_SECRET = ""
    output, error = run()
    assert "GITHUB_WEBHOOK_SECRET is not set" in output and "GITHUB_APP_ID" in output and error


def test_a_wrong_key_is_reported(github, settings):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    settings.GITHUB_APP_PRIVATE_KEY = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    output, error = run()
    assert "did not accept the App's JWT" in output and error
