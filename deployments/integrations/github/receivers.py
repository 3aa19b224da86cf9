"""Status reports to GitHub runs waiting on the portal: when a GitHub request becomes ready for
approval and after each approval that does not yet reach the quorum (best effort, after commit)."""

from __future__ import annotations

from django.dispatch import receiver

from deployments.choices import Decision, RequestSource, RequestStatus
from deployments.signals import decision_recorded, request_transitioned
from portal import enqueue

from .tasks import post_status_report


def _queue(request_id: int) -> None:
    # Best effort, one fast publish after commit: a missed status report changes nothing.
    enqueue.publish_on_commit(post_status_report, (request_id,), what=f"GitHub status report for #{request_id}")


@receiver(request_transitioned, dispatch_uid="deployments.github.status_on_transition")
def _on_transition(sender, request, old_status, new_status, **kwargs) -> None:
    if request.source == RequestSource.GITHUB and new_status == RequestStatus.AWAITING_APPROVAL:
        _queue(request.pk)


@receiver(decision_recorded, dispatch_uid="deployments.github.status_on_approval")
def _on_decision(sender, approval, **kwargs) -> None:
    if approval.decision == Decision.APPROVE and approval.request.source == RequestSource.GITHUB:
        _queue(approval.request_id)
