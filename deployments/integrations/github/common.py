"""Shared pieces of the GitHub webhook handlers: outcomes, payload readers, mapping to the portal."""

from __future__ import annotations

import logging

from django.contrib.auth import get_user_model

from deployments.models import Environment, Service

from .models import DeliveryState

logger = logging.getLogger(__name__)

GITHUB_USERNAME = "github-app"


class Outcome(Exception):
    """Ends processing of a delivery in ``state`` with ``reason`` (not an error)."""

    def __init__(self, state: str, reason: str):
        super().__init__(reason)
        self.state = state
        self.reason = reason


class Malformed(Outcome):
    def __init__(self, reason: str):
        super().__init__(DeliveryState.FAILED, f"Malformed payload: {reason}")


# --- helpers --------------------------------------------------------------------------------------


def github_account():
    """The service account GitHub-originated actions are recorded under (it can never sign in)."""
    user, created = get_user_model().objects.get_or_create(
        username=GITHUB_USERNAME,
        defaults={"is_service_account": True, "is_active": False, "first_name": "GitHub", "last_name": "App"},
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


def _dict(value, what: str) -> dict:
    if not isinstance(value, dict):
        raise Malformed(f"{what} is missing or not an object")
    return value


def _str(value, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise Malformed(f"{what} is missing or not a string")
    return value


def _int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Malformed(f"{what} is missing or not a number")
    return value


def https_url(*candidates) -> str:
    """The first candidate that is an https URL (links from GitHub payloads), or ""."""
    return next((u for u in candidates if isinstance(u, str) and u.startswith("https://")), "")


def find_service(repository: str) -> Service | None:
    return Service.objects.filter(repository__iexact=repository).order_by("pk").first()


def find_environment(service: Service, name: str) -> Environment | None:
    return Environment.objects.filter(service=service, name=name).select_related("service").first()


