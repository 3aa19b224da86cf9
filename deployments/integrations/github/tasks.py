"""Thin Celery tasks for the GitHub integration: each loads the service it calls inside its body
(services enqueue tasks; tasks never sit above the services they call in the import graph)."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from compliance.people.identity import as_system_actor
from portal.retry import RetryPolicy

from .client import GitHubError

logger = logging.getLogger(__name__)
# Processing a stored webhook delivery again after GitHub could not be reached.
PROCESSING_RETRY = RetryPolicy(
    max_attempts=settings.GITHUB_WEBHOOK_PROCESSING_MAX_RETRIES,
    base_seconds=settings.GITHUB_WEBHOOK_PROCESSING_BACKOFF_SECONDS,
    cap_seconds=settings.GITHUB_WEBHOOK_PROCESSING_BACKOFF_CAP_SECONDS,
)


def enqueue_delivery(delivery_pk: int) -> None:
    """Queue processing; if the broker is down the delivery stays stored and the sweeper requeues it."""
    try:
        process_github_delivery.delay(delivery_pk)
    except Exception:  # the webhook has already been stored; never fail the HTTP answer for this
        logger.exception("Could not queue GitHub delivery #%s; the sweeper will pick it up", delivery_pk)


@shared_task(
    name="deployments.github.process_delivery",
    acks_late=True,
    bind=True,
    max_retries=PROCESSING_RETRY.max_attempts,
)
@as_system_actor
def process_github_delivery(self, delivery_pk: int) -> str | None:
    from . import events

    try:
        return events.process_delivery(delivery_pk)
    except GitHubError as exc:
        if self.request.is_eager:
            return "failed"
        raise self.retry(exc=exc, countdown=events.WEBHOOK_DELIVERIES.retry_delay(self.request.retries + 1)) from None


@shared_task(name="deployments.github.requeue_stale_deliveries", acks_late=True)
@as_system_actor
def requeue_stale_deliveries() -> int:
    from . import events

    return events.requeue_stale_deliveries()


@shared_task(name="deployments.github.refresh_pending_checks", acks_late=True)
@as_system_actor
def refresh_pending_checks() -> int:
    from . import events

    return events.refresh_pending_checks()


@shared_task(name="deployments.github.audit_branch_protection", acks_late=True)
@as_system_actor
def audit_branch_protection() -> int:
    from . import branch_protection

    return branch_protection.audit_all()


@shared_task(name="deployments.github.post_status_report", acks_late=True)
@as_system_actor
def post_status_report(request_id: int) -> bool:
    from . import status_reports

    return status_reports.post_status_report(request_id=request_id)
