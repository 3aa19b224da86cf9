"""Shared pieces of the GitLab integration: the account its actions are recorded under, outcomes of
processing a delivery, payload readers and links."""

from __future__ import annotations

from compliance.people.identity import service_account
from deployments.integrations.webhooks.processing import (  # noqa: F401 (the integration's modules import them from here)
    Malformed,
    Outcome,
    as_dict,
    as_int,
    as_str,
)

from .client import is_instance_url
from .models import GitLabProject

GITLAB_USERNAME = "gitlab-integration"


def gitlab_account():
    """The service account GitLab-originated actions are recorded under (it can never sign in)."""
    return service_account(GITLAB_USERNAME, first_name="GitLab", last_name="integration")


def link(*candidates) -> str:
    """The first candidate that is an https URL or a page of the configured GitLab instance, or ""."""
    for url in candidates:
        if isinstance(url, str) and (url.startswith("https://") or is_instance_url(url)):
            return url[:500]
    return ""


def project_for(path: str | None = None, project_id: int | None = None) -> GitLabProject | None:
    """The active project configuration for a payload's ``path_with_namespace``."""
    if not path:
        return None
    return GitLabProject.objects.filter(project_path__iexact=path, is_active=True).select_related("service").first()
