"""A real OpenID Connect provider (npm's certified ``oidc-provider``, in fixtures/oidc-provider/) on loopback.

Skipped when Node.js or the npm package is missing (``npm ci`` in that folder installs it); a failure
under REQUIRE_SERVICES=1, where .ci/run installs it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.services_required import missing

OIDC_DIR = Path(__file__).parent / "fixtures" / "oidc-provider"
CLIENT_ID = "deployment-portal"
CLIENT_SECRET = "test-client-secret-0123456789"
CALLBACK = "http://testserver/accounts/oidc/sso/login/callback/"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class OpenIDProvider:
    issuer: str
    accounts_file: Path
    process: subprocess.Popen
    accounts: dict = field(default_factory=dict)

    def set_accounts(self, **accounts) -> None:
        self.accounts = accounts
        self.accounts_file.write_text(json.dumps(accounts))

    def portal_settings(self, **extra) -> dict:
        return {
            "openid_connect": {
                "OAUTH_PKCE_ENABLED": True,
                "APPS": [{
                    "provider_id": "sso", "name": "Test IdP", "client_id": CLIENT_ID, "secret": CLIENT_SECRET,
                    "settings": {"server_url": self.issuer, "token_auth_method": "client_secret_basic",
                                 "scope": ["openid", "profile", "email", "groups"], **extra},
                }],
            }
        }

    def authorize(self, authorize_url: str, login: str) -> str:
        """Play the person at the provider: follow the authorization request to the sign-in form, sign in
        as ``login``, and return the redirect back to the portal (its path and query)."""
        browser = requests.Session()
        response = browser.get(authorize_url, allow_redirects=True, timeout=10)
        response.raise_for_status()
        assert "/interaction/" in response.url, response.url
        response = browser.post(f"{response.url}/login", data={"login": login}, allow_redirects=False, timeout=10)
        for _ in range(5):
            location = response.headers["Location"]
            if location.startswith(CALLBACK) or location.startswith("http://testserver/"):
                parts = urlsplit(location)
                return f"{parts.path}?{parts.query}"
            response = browser.get(requests.compat.urljoin(response.url, location), allow_redirects=False,
                                   timeout=10)
        raise AssertionError(f"the provider never sent the browser back to the portal: {response.status_code}")


def _start(tmp_path: Path, skew_seconds: int = 0) -> OpenIDProvider:
    node = shutil.which("node")
    if node is None:
        missing("needs Node.js for the OpenID Connect provider tests")
    if not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        missing("needs the oidc-provider npm package: cd tests/compliance/identity/fixtures/oidc-provider && npm ci")
    port = _free_port()
    accounts_file = tmp_path / f"accounts-{port}.json"
    accounts_file.write_text("{}")
    env = {
        **os.environ, "OIDC_PORT": str(port), "OIDC_CLIENT_ID": CLIENT_ID, "OIDC_CLIENT_SECRET": CLIENT_SECRET,
        "OIDC_REDIRECT_URI": CALLBACK, "OIDC_ACCOUNTS": str(accounts_file),
        "OIDC_CLOCK_SKEW_SECONDS": str(skew_seconds), "NODE_ENV": "test",
    }
    process = subprocess.Popen([node, "server.mjs"], cwd=OIDC_DIR, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    issuer = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"oidc-provider exited: {process.stdout.read().decode(errors='replace')}")
        try:
            if requests.get(f"{issuer}/.well-known/openid-configuration", timeout=1).ok:
                return OpenIDProvider(issuer=issuer, accounts_file=accounts_file, process=process)
        except requests.ConnectionError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("oidc-provider did not start within 20 s")


def _stop(provider: OpenIDProvider) -> None:
    provider.process.terminate()
    try:
        provider.process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        provider.process.kill()


@pytest.fixture(scope="module")
def oidc_provider(tmp_path_factory):
    provider = _start(tmp_path_factory.mktemp("oidc"))
    yield provider
    _stop(provider)


@pytest.fixture
def oidc_provider_with_slow_clock(tmp_path):
    """A provider whose clock runs 20 minutes behind: the ID tokens it issues (10 minutes) arrive expired."""
    provider = _start(tmp_path, skew_seconds=-1200)
    yield provider
    _stop(provider)


def callback_query(path: str) -> dict:
    return {key: values[0] for key, values in parse_qs(urlsplit(path).query).items()}
