"""Signals the GitLab integration listens to: the demo's GitLab service (``billing-worker``) as a configured
GitLab project, so the demo shows the integration's set-up without any GitLab to reach (nothing is polled
until ``GITLAB_TOKEN`` is set); and freeze windows saved or deleted, mirrored to GitLab at once."""

from __future__ import annotations

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from deployments.choices import CIProvider
from deployments.models import FreezeWindow, Service
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


@receiver(post_save, sender=FreezeWindow, dispatch_uid="deployments.gitlab.freeze_saved")
@receiver(post_delete, sender=FreezeWindow, dispatch_uid="deployments.gitlab.freeze_deleted")
def mirror_freeze_window(sender, instance: FreezeWindow, **kwargs) -> None:
    """Queue the freeze-period mirror of the window's GitLab project once the change commits.

    Best effort: if the broker is down, the periodic mirror catches up within minutes."""
    if not settings.GITLAB_TOKEN:
        return
    from portal.enqueue import publish_on_commit

    from .tasks import mirror_freeze_periods

    projects = GitLabProject.objects.filter(service__environments__id=instance.environment_id).filter(
        mirror_freeze_windows=True
    ) | GitLabProject.objects.filter(freeze_periods__window_id=instance.pk)
    for pk in set(projects.values_list("pk", flat=True)):
        publish_on_commit(mirror_freeze_periods, [pk], what="GitLab freeze-period mirror")
