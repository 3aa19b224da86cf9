"""Thin Celery tasks for the GitHub integration: each loads the service it calls inside its body
(services enqueue tasks; tasks never sit above the services they call in the import graph)."""

from __future__ import annotations

import logging

from celery import shared_task

from compliance.people.identity import as_system_actor

from .client import GitHubError

logger = logging.getLogger(__name__)


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
    max_retries=6,
)
@as_system_actor
def process_github_delivery(self, delivery_pk: int) -> str | None:
    from . import events

    try:
        return events.process_delivery(delivery_pk)
    except GitHubError as exc:
        if self.request.is_eager:
            return "failed"
        raise self.retry(exc=exc, countdown=min(600, 15 * 2**self.request.retries)) from None


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
