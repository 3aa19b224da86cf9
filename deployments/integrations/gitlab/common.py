"""Shared pieces of the GitLab integration: the account its actions are recorded under, outcomes of
processing a delivery, payload readers and links."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from .client import is_instance_url
from .models import DeliveryState, GitLabProject

GITLAB_USERNAME = "gitlab-integration"


class Outcome(Exception):  # noqa: N818 - reads as "processing ended with this outcome"
    """Ends processing of a delivery in ``state`` with ``reason`` (not an error)."""

    def __init__(self, state: str, reason: str):
        super().__init__(reason)
        self.state = state
        self.reason = reason


class Malformed(Outcome):
    def __init__(self, reason: str):
        super().__init__(DeliveryState.FAILED, f"Malformed payload: {reason}")


def gitlab_account():
    """The service account GitLab-originated actions are recorded under (it can never sign in)."""
    user, created = get_user_model().objects.get_or_create(
        username=GITLAB_USERNAME,
        defaults={"is_service_account": True, "is_active": False, "first_name": "GitLab", "last_name": "integration"},
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


def as_dict(value, what: str) -> dict:
    if not isinstance(value, dict):
        raise Malformed(f"{what} is missing or not an object")
    return value


def as_str(value, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise Malformed(f"{what} is missing or not a string")
    return value


def as_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Malformed(f"{what} is missing or not a number")
    return value


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
