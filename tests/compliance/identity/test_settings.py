"""The sign-in settings (portal/conf/identity.py): bad values stop start-up naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from portal.conf.identity import parse_group_roles

ROOT = Path(__file__).resolve().parents[3]


def test_groups_map_to_the_portal_roles_only():
    assert parse_group_roles("a:Engineers, b:Deployment Approvers,a:Auditors", allow_administrators=False) == {
        "a": frozenset({"Engineers", "Auditors"}), "b": frozenset({"Deployment Approvers"})}
    with pytest.raises(ImproperlyConfigured, match="superuser"):
        parse_group_roles("it:staff", allow_administrators=False)
    with pytest.raises(ImproperlyConfigured, match="not of the form"):
        parse_group_roles("no-role-here", allow_administrators=False)


def test_mapping_into_administrators_needs_an_explicit_yes():
    with pytest.raises(ImproperlyConfigured, match="PORTAL_SSO_ALLOW_ADMINISTRATORS"):
        parse_group_roles("it-admins:Administrators", allow_administrators=False)
    assert parse_group_roles("it-admins:Administrators", allow_administrators=True) == {
        "it-admins": frozenset({"Administrators"})}


def _start(**env) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PORTAL_OIDC", "PORTAL_SAML", "PORTAL_SSO"))}
    environ.update(DJANGO_DEBUG="1", **env)
    environ["DJANGO_SETTINGS_MODULE"] = "portal.settings"
    code = ("import django; django.setup(); from django.conf import settings as s; "
            "print(list(s.SOCIALACCOUNT_PROVIDERS))")
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environ, capture_output=True, text=True,
                          timeout=120)


def test_an_issuer_without_client_credentials_stops_start_up_and_a_complete_one_configures_the_provider(tmp_path):
    refused = _start(PORTAL_OIDC_ISSUER="https://login.example.com")
    assert refused.returncode != 0 and "PORTAL_OIDC_CLIENT_ID and PORTAL_OIDC_CLIENT_SECRET" in refused.stderr
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    started = _start(PORTAL_OIDC_ISSUER="https://login.example.com", PORTAL_OIDC_CLIENT_ID="portal",
                     PORTAL_OIDC_CLIENT_SECRET_FILE=str(secret), PORTAL_REQUIRE_MFA_FOR="approvers,administrators")
    assert started.returncode == 0, started.stderr[-500:]
    assert "openid_connect" in started.stdout and "s3cret" not in started.stdout
    unknown = _start(PORTAL_REQUIRE_MFA_FOR="approvers,interns")
    assert unknown.returncode != 0 and "PORTAL_REQUIRE_MFA_FOR names unknown role(s) interns" in unknown.stderr
