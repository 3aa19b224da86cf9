"""Status reports to GitHub runs waiting on the portal: when a GitHub request becomes ready for
approval and after each approval that does not yet reach the quorum (best effort, after commit)."""

from __future__ import annotations

from django.db import transaction
from django.dispatch import receiver

from deployments.choices import Decision, RequestSource, RequestStatus
from deployments.signals import decision_recorded, request_transitioned

from .tasks import post_status_report


def _queue(request_id: int) -> None:
    def enqueue() -> None:
        try:
            post_status_report.delay(request_id)
        except Exception:  # best effort: a missed status report changes nothing
            import logging

            logging.getLogger(__name__).warning("Could not queue a GitHub status report for #%s", request_id)

    transaction.on_commit(enqueue)


@receiver(request_transitioned, dispatch_uid="deployments.github.status_on_transition")
def _on_transition(sender, request, old_status, new_status, **kwargs) -> None:
    if request.source == RequestSource.GITHUB and new_status == RequestStatus.AWAITING_APPROVAL:
        _queue(request.pk)


@receiver(decision_recorded, dispatch_uid="deployments.github.status_on_approval")
def _on_decision(sender, approval, **kwargs) -> None:
    if approval.decision == Decision.APPROVE and approval.request.source == RequestSource.GITHUB:
        _queue(approval.request_id)
