"""Fixtures for the GitLab integration: the fake GitLab, a configured service and project, people
mapped by GitLab username, and helpers that send webhooks the way GitLab does."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from compliance.people.roles import Role
from deployments.choices import CIProvider, Tier
from deployments.integrations.gitlab.models import GitLabProject
from deployments.models import Execution
from tests import factories
from tests.integrations.gitlab.fake import TOKEN, FakeGitLab

WEBHOOK_SECRET = "gitlab-webhook-token-8d2e"
PROJECT = "acme/billing-worker"
SHA = "4f1e6a8d2b9c0e7f3a5d1c8b6e4f2a0d9c7b5e3a"
BASE_SHA = "0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b"
PIPELINE = 555
MAPPING = {
    "unit": ["unit-tests*"],
    "integration": "integration-tests",
    "lint": "lint",
    "security-scan": ["sast", "secret_detection"],
}


@pytest.fixture
def gitlab(settings, httpserver):
    fake = FakeGitLab(httpserver)
    settings.GITLAB_URL = fake.url
    settings.GITLAB_TOKEN = TOKEN
    settings.GITLAB_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.PORTAL_BASE_URL = "https://portal.example.com"
    fake.add_project(PROJECT)
    return fake


@pytest.fixture
def production(db):
    """billing-worker/production: strict defaults (2 approvals, change authors excluded, four checks)."""
    service = factories.ServiceFactory(name="billing-worker", repository=PROJECT, ci_provider=CIProvider.GITLAB)
    return factories.make_environment(service=service, name="production", tier=Tier.PRODUCTION)


@pytest.fixture
def project(production):
    return GitLabProject.objects.create(service=production.service, project_path=PROJECT, check_mapping=MAPPING)


@pytest.fixture
def bob(production):
    """The engineer whose pipeline deploys, mapped by GitLab username."""
    return factories.engineer(production, username="bob", gitlab_username="bob-gl")


@pytest.fixture
def approvers(production):
    return [factories.approver(production, username=f"billing-approver{i}") for i in range(3)]


@pytest.fixture
def administrator(db):
    return factories.UserFactory(username="ada-admin", email="ada@example.com", roles=[Role.ADMINISTRATOR])


def deployed_base(environment):
    """An earlier authorized deployment of BASE_SHA: the base of the change set."""
    if not Execution.objects.filter(environment=environment, sha=BASE_SHA).exists():
        Execution.objects.create(
            environment=environment,
            sha=BASE_SHA,
            status="success",
            authorized=True,
            started_at=timezone.now() - timedelta(days=1),
        )


def passing_pipeline(gitlab, *, lint="success", sha=SHA):
    for name, status in (
        ("unit-tests 1/2", "success"),
        ("unit-tests 2/2", "success"),
        ("integration-tests", "success"),
        ("lint", lint),
        ("sast", "success"),
        ("secret_detection", "success"),
    ):
        gitlab.add_job(PROJECT, name=name, status=status, pipeline_id=PIPELINE, sha=sha)


def compare_answer(commits=None):
    commits = (
        commits
        if commits is not None
        else [
            {
                "id": SHA,
                "short_id": SHA[:8],
                "title": "Round refunds half-even",
                "message": "Round refunds half-even\n",
                "author_name": "Carl Coder",
                "author_email": "carl@example.com",
                "committer_name": "Bob",
                "committer_email": "77-bob-gl@users.noreply.gitlab.com",
                "created_at": "2026-11-30T10:00:00.000Z",
                "web_url": f"https://gitlab.example.com/{PROJECT}/-/commit/{SHA}",
            }
        ]
    )
    return {
        "commit": commits[-1] if commits else None,
        "commits": commits,
        "diffs": [
            {
                "old_path": "refunds.py",
                "new_path": "refunds.py",
                "new_file": False,
                "renamed_file": False,
                "deleted_file": False,
                "diff": "@@ -1,2 +1,2 @@\n-old = 1\n+new = 2\n+more = 3\n",
            }
        ],
        "compare_timeout": False,
        "compare_same_ref": False,
        "web_url": f"https://gitlab.example.com/{PROJECT}/-/compare/{BASE_SHA}...{SHA}",
    }


def waiting_deployment(gitlab, environment, *, checks=True, compare=True, **kwargs):
    """GitLab's state for one deployment waiting for approval: checks, a compare, an MR, the deployment."""
    deployed_base(environment)
    if checks:
        passing_pipeline(gitlab)
    if compare:
        gitlab.compares[(PROJECT, BASE_SHA, SHA)] = compare_answer()
    gitlab.merge_requests[(PROJECT, SHA)] = [
        {
            "id": 8801,
            "iid": 12,
            "title": "Round refunds half-even",
            "state": "merged",
            "author": {"id": 31, "username": "dana-gl", "name": "Dana"},
            "web_url": f"https://gitlab.example.com/{PROJECT}/-/merge_requests/12",
        }
    ]
    return gitlab.add_deployment(PROJECT, environment.name, SHA, pipeline_id=PIPELINE, **kwargs)


def send(
    client,
    event: str,
    payload,
    *,
    token: str | None = WEBHOOK_SECRET,
    event_uuid: str | None = None,
    headers: dict | None = None,
):
    """POST a webhook the way GitLab does (JSON body, X-Gitlab-Event, X-Gitlab-Event-UUID, X-Gitlab-Token)."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    extra = {
        "HTTP_X_GITLAB_EVENT": event,
        "HTTP_X_GITLAB_EVENT_UUID": event_uuid or str(uuid.uuid4()),
        "HTTP_X_GITLAB_WEBHOOK_UUID": "3f1c1bc3-2e0a-4d24-9a4c-bd2b1d8a4e55",
        "HTTP_X_GITLAB_INSTANCE": "https://gitlab.example.com",
        "HTTP_USER_AGENT": "GitLab/17.6.0",
    }
    if token is not None:
        extra["HTTP_X_GITLAB_TOKEN"] = token
    for name, value in (headers or {}).items():
        extra["HTTP_" + name.upper().replace("-", "_")] = value
    return client.post("/webhooks/gitlab/", data=body, content_type="application/json", **extra)


def project_payload(gitlab):
    return {
        "id": 4242,
        "name": "billing-worker",
        "path_with_namespace": PROJECT,
        "web_url": f"{gitlab.url}/{PROJECT}",
        "namespace": "acme",
        "default_branch": "main",
    }


def deployment_event(gitlab, deployment, status: str) -> dict:
    """GitLab's documented Deployment Hook payload."""
    job = deployment["deployable"]
    return {
        "object_kind": "deployment",
        "status": status,
        "status_changed_at": "2026-11-30 10:05:00 +0000",
        "deployment_id": deployment["id"],
        "deployable_id": job["id"],
        "deployable_url": f"https://gitlab.example.com/{PROJECT}/-/jobs/{job['id']}",
        "environment": deployment["environment"]["name"],
        "environment_tier": "production",
        "environment_slug": deployment["environment"]["name"],
        "environment_external_url": "https://billing.example.com",
        "project": project_payload(gitlab),
        "short_sha": deployment["sha"][:8],
        "user": {"id": 5, "name": "Bob", "username": deployment["user"]["username"], "email": "bob@example.com"},
        "user_url": "https://gitlab.example.com/bob-gl",
        "commit_url": f"https://gitlab.example.com/{PROJECT}/-/commit/{deployment['sha']}",
        "commit_title": "Round refunds half-even",
    }


def pipeline_event(gitlab, status: str = "running") -> dict:
    return {
        "object_kind": "pipeline",
        "object_attributes": {
            "id": PIPELINE,
            "iid": 31,
            "ref": "main",
            "tag": False,
            "sha": SHA,
            "status": status,
            "source": "push",
            "stages": ["test", "deploy"],
        },
        "user": {"id": 5, "name": "Bob", "username": "bob-gl"},
        "project": project_payload(gitlab),
        "builds": [],
    }


def push_event(gitlab, *, username: str, branch: str = "main", after: str = SHA) -> dict:
    return {
        "object_kind": "push",
        "event_name": "push",
        "before": BASE_SHA,
        "after": after,
        "ref": f"refs/heads/{branch}",
        "ref_protected": True,
        "checkout_sha": after,
        "user_id": 9,
        "user_name": username.title(),
        "user_username": username,
        "user_email": f"{username}@example.com",
        "project_id": 4242,
        "project": project_payload(gitlab),
        "commits": [],
        "total_commits_count": 1,
    }
