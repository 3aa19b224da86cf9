"""Shared pieces of the GitHub webhook handlers: outcomes, payload readers, mapping to the portal."""

from __future__ import annotations

import logging

from compliance.people.identity import service_account
from deployments.integrations.webhooks.processing import (  # noqa: F401 (the integration's modules import them from here)
    Malformed,
    Outcome,
    as_dict,
    as_int,
    as_str,
)
from deployments.models import Environment, Service

logger = logging.getLogger(__name__)

GITHUB_USERNAME = "github-app"


def github_account():
    """The service account GitHub-originated actions are recorded under (it can never sign in)."""
    return service_account(GITHUB_USERNAME, first_name="GitHub", last_name="App")


def https_url(*candidates) -> str:
    """The first candidate that is an https URL (links from GitHub payloads), or ""."""
    return next((u for u in candidates if isinstance(u, str) and u.startswith("https://")), "")


def find_service(repository: str) -> Service | None:
    return Service.objects.filter(repository__iexact=repository).order_by("pk").first()


def find_environment(service: Service, name: str) -> Environment | None:
    return Environment.objects.filter(service=service, name=name).select_related("service").first()


