"""Thin Celery tasks for the Jenkins integration (the work is in the modules they load)."""

from __future__ import annotations

from celery import shared_task

from compliance.people.identity import as_system_actor


@shared_task(name="deployments.jenkins.reconcile_builds", acks_late=True)
@as_system_actor
def reconcile_builds() -> dict:
    from .reconciliation import reconcile_jenkins_builds

    return reconcile_jenkins_builds()
