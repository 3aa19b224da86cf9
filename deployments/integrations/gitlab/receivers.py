"""The demo's GitLab service (``billing-worker``) as a configured GitLab project, so the demo shows the
integration's set-up without any GitLab to reach (nothing is polled until ``GITLAB_TOKEN`` is set)."""

from __future__ import annotations

from django.dispatch import receiver

from deployments.choices import CIProvider
from deployments.models import Service
from deployments.signals import demo_data_loaded

from .models import GitLabProject

DEMO_CHECK_MAPPING = {
    "unit": ["unit-tests*"],
    "integration": ["integration-tests"],
    "lint": ["lint"],
    "security-scan": ["sast", "dependency_scanning", "secret_detection"],
}


@receiver(demo_data_loaded, dispatch_uid="deployments.gitlab.demo")
def configure_demo_project(sender, users=None, environments=None, **kwargs) -> None:
    for service in Service.objects.filter(ci_provider=CIProvider.GITLAB):
        GitLabProject.objects.get_or_create(
            service=service, defaults={"project_path": service.repository, "check_mapping": DEMO_CHECK_MAPPING}
        )
