"""Fixtures for the GitHub integration: a test RSA key made at run time, the fake GitHub, a
configured service, and a helper that sends signed webhooks."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.utils import timezone

from compliance.people.roles import Role
from deployments.choices import Tier
from deployments.integrations.github import client as github_client
from deployments.models import Environment, Execution
from tests import factories
from tests.integrations.github.fake import APP_ID, FakeGitHub, fixture

WEBHOOK_SECRET = "whsec-github-test-5b7c"
REPOSITORY = "octo-org/payments-api"
SHA = "7638417db6d59f3c431d3e1f261cc637155684cd"
BASE_SHA = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
RUN_ID = 7123456789


@pytest.fixture(scope="session")
def github_key():
    """A fresh RSA key for the test App (never a committed key file)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return pem, key.public_key()


@pytest.fixture
def github(settings, httpserver, github_key):
    pem, public_key = github_key
    fake = FakeGitHub(httpserver, public_key)
    settings.GITHUB_API_URL = fake.url
    settings.GITHUB_APP_ID = APP_ID
    settings.GITHUB_APP_PRIVATE_KEY = pem
    settings.GITHUB_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.PORTAL_BASE_URL = "https://portal.example.com"
    github_client.clear_token_cache()
    fake.install(REPOSITORY)
    yield fake
    github_client.clear_token_cache()


@pytest.fixture
def production(db):
    """payments-api/production: strict defaults (2 approvals, change authors excluded, four checks)."""
    service = factories.ServiceFactory(name="payments-api", repository=REPOSITORY)
    return factories.make_environment(service=service, name="production", tier=Tier.PRODUCTION)


@pytest.fixture
def octocat(production):
    """The engineer who triggers the workflow, mapped by GitHub login."""
    return factories.engineer(production, username="octavia", github_login="octocat")


@pytest.fixture
def approvers(production):
    return [factories.approver(production, username=f"prod-approver{i}") for i in range(3)]


@pytest.fixture
def administrator(db):
    return factories.UserFactory(username="ada-admin", email="ada@example.com", roles=[Role.ADMINISTRATOR])


def signature(body: bytes, secret: str = WEBHOOK_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def send(
    client,
    event: str,
    payload,
    *,
    secret: str = WEBHOOK_SECRET,
    delivery_id: str | None = None,
    headers: dict | None = None,
    sign: bool = True,
):
    """POST a webhook the way GitHub does (JSON body, X-GitHub-* headers, X-Hub-Signature-256)."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    extra = {
        "HTTP_X_GITHUB_EVENT": event,
        "HTTP_X_GITHUB_DELIVERY": delivery_id or str(uuid.uuid4()),
        "HTTP_X_GITHUB_HOOK_ID": "30",
        "HTTP_USER_AGENT": "GitHub-Hookshot/044aadd",
    }
    if sign:
        extra["HTTP_X_HUB_SIGNATURE_256"] = signature(body, secret)
    for name, value in (headers or {}).items():
        extra["HTTP_" + name.upper().replace("-", "_")] = value
    return client.post("/webhooks/github/", data=body, content_type="application/json", **extra)


def protection_payload(github, **changes) -> dict:
    payload = fixture("deployment_protection_rule.requested", api_url=github.url)
    payload.update(changes)
    return payload


def all_checks(status="completed", conclusion="success"):
    return [
        {
            "id": 100 + i,
            "name": name,
            "head_sha": SHA,
            "status": status,
            "conclusion": conclusion,
            "started_at": "2026-11-26T15:56:00Z",
            "completed_at": "2026-11-26T15:58:00Z",
            "html_url": f"https://github.com/{REPOSITORY}/runs/{100 + i}",
            "app": {"slug": "github-actions"},
        }
        for i, name in enumerate(["unit", "integration", "lint", "security-scan"])
    ]


def compare_answer(commits=None):
    commits = (
        commits
        if commits is not None
        else [
            {
                "sha": SHA,
                "html_url": f"https://github.com/{REPOSITORY}/commit/{SHA}",
                "commit": {
                    "message": "Fix rounding of refunds",
                    "author": {"name": "Bob", "email": "bob@example.com"},
                    "committer": {"name": "GitHub", "email": "noreply@github.com"},
                },
                "author": {"login": "bob-gh"},
                "committer": {"login": "web-flow"},
            },
        ]
    )
    return {
        "url": "",
        "html_url": f"https://github.com/{REPOSITORY}/compare/{BASE_SHA}...{SHA}",
        "status": "ahead",
        "ahead_by": len(commits),
        "behind_by": 0,
        "total_commits": len(commits),
        "commits": commits,
        "files": [{"filename": "refunds.py", "status": "modified", "additions": 12, "deletions": 3, "changes": 15}],
    }


def deployed_base():
    """A previous successful deployment of BASE_SHA to production: the change set's base, so the change
    authors can be determined (without one, production refuses approval)."""
    environment = Environment.objects.filter(service__repository=REPOSITORY, name="production").first()
    if environment is not None and not Execution.objects.filter(environment=environment, sha=BASE_SHA).exists():
        # History from before the test (an authorized deployment), written directly so it opens no findings.
        Execution.objects.create(environment=environment, sha=BASE_SHA, status="success", authorized=True,
                                 started_at=timezone.now() - timedelta(days=1))


def prepare_github(github, *, checks=None, compare=True):
    """The fake's state for the fixture deployment: checks, a compare from BASE_SHA, a waiting run."""
    github.check_runs[(REPOSITORY, SHA)] = all_checks() if checks is None else checks
    if compare:
        github.compares[(REPOSITORY, BASE_SHA, SHA)] = compare_answer()
    github.pulls[(REPOSITORY, SHA)] = [
        {
            "number": 7,
            "title": "Fix rounding of refunds",
            "html_url": f"https://github.com/{REPOSITORY}/pull/7",
            "user": {"login": "bob-gh"},
            "state": "closed",
        }
    ]
    return github.wait_for(REPOSITORY, RUN_ID, "production")
