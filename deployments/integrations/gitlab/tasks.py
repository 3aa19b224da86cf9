"""Thin Celery tasks for the GitLab integration: each loads the module it calls inside its body."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from compliance.people.identity import as_system_actor
from portal.retry import RetryPolicy

from .client import GitLabError

logger = logging.getLogger(__name__)
# Processing a stored webhook delivery again after GitLab could not be reached.
PROCESSING_RETRY = RetryPolicy(
    max_attempts=settings.GITLAB_WEBHOOK_PROCESSING_MAX_RETRIES,
    base_seconds=settings.GITLAB_WEBHOOK_PROCESSING_BACKOFF_SECONDS,
    cap_seconds=settings.GITLAB_WEBHOOK_PROCESSING_BACKOFF_CAP_SECONDS,
)


def enqueue_delivery(delivery_pk: int) -> None:
    """Queue processing; if the broker is down the delivery stays stored and the sweeper requeues it."""
    try:
        process_gitlab_delivery.delay(delivery_pk)
    except Exception:  # the webhook has been stored; never fail the HTTP answer for this
        logger.exception("Could not queue GitLab delivery #%s; the sweeper will pick it up", delivery_pk)


@shared_task(
    name="deployments.gitlab.process_delivery", acks_late=True, bind=True, max_retries=PROCESSING_RETRY.max_attempts
)
@as_system_actor
def process_gitlab_delivery(self, delivery_pk: int) -> str | None:
    from . import events

    try:
        return events.process_delivery(delivery_pk)
    except GitLabError as exc:
        if self.request.is_eager:
            return "failed"
        raise self.retry(exc=exc, countdown=events.WEBHOOK_DELIVERIES.retry_delay(self.request.retries + 1)) from None


@shared_task(name="deployments.gitlab.requeue_stale_deliveries", acks_late=True)
@as_system_actor
def requeue_stale_deliveries() -> int:
    from . import events

    return events.requeue_stale_deliveries()


@shared_task(name="deployments.gitlab.poll_blocked_deployments", acks_late=True)
@as_system_actor
def poll_blocked_deployments() -> dict:
    from . import intake

    return intake.poll_all()


@shared_task(name="deployments.gitlab.audit_protection", acks_late=True)
@as_system_actor
def audit_protection() -> int:
    from . import protection

    return protection.audit_all()


@shared_task(name="deployments.gitlab.mirror_freeze_periods", acks_late=True)
@as_system_actor
def mirror_freeze_periods(project_pk: int | None = None) -> dict:
    from . import freeze

    return freeze.sync_all(project_pk)
